"""The caption tokenizer: lower-case words, `<pad> <start> <end> <unk>`, a vocabulary with a minimum count.

Saved as RUN/tokenizer.json and copied into exported packages, so a package decodes with exactly the training
vocabulary. No torch: the torch-free runtime uses it too. Words are runs of letters and digits in any script
("café", "красный"); punctuation is dropped (BLEU is computed on the same words, see metrics/captions.py).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

from pixelforge.errors import PixelforgeError

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
# Unicode letters and digits, not [a-z0-9]: that cut "café" to "caf" and made a caption with no ASCII letters
# (Russian, Greek, ...) "empty", so such a data set trained on nothing. Identical on ASCII text.
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """Example:
        >>> words("A small, RED circle.")
        ['a', 'small', 'red', 'circle']
    """
    # NFC first: a decomposed "café" (e + combining accent, as macOS and some editors write it) was the word "cafe"
    return _WORD.findall(unicodedata.normalize("NFC", text).lower())


class Tokenizer:
    """Words <-> ids. Ids 0..3 are the special tokens; the rest are sorted by count, then alphabetically.

    Example:
        >>> tok = Tokenizer.fit(["a red circle", "a blue square"])
        >>> tok.decode(tok.encode("a red square"))
        'a red square'
    """

    def __init__(self, vocab: list[str], min_count: int = 1):
        if list(vocab[:4]) != list(SPECIALS):
            raise PixelforgeError(f"tokenizer: the vocabulary must start with {', '.join(SPECIALS)}")
        self.vocab, self.min_count = list(vocab), min_count
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.pad, self.start, self.end, self.unk = (self.index[t] for t in SPECIALS)

    @classmethod
    def fit(cls, captions: list[str], min_count: int = 1) -> "Tokenizer":
        counts = Counter(w for c in captions for w in words(c))
        kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *kept], min_count)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, max_words: int | None = None) -> list[int]:
        """<start> word ids <end> (words beyond `max_words` cut)."""
        ids = [self.index.get(w, self.unk) for w in words(text)][:max_words]
        return [self.start, *ids, self.end]

    def decode(self, ids) -> str:
        """The words of `ids` up to <end>, specials left out."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.end:
                break
            if i not in (self.pad, self.start):
                out.append(self.vocab[i])
        return " ".join(out)

    def oov_rate(self, captions: list[str]) -> float:
        tokens = [w for c in captions for w in words(c)]
        return sum(w not in self.index for w in tokens) / max(len(tokens), 1)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"vocab": self.vocab, "min_count": self.min_count}))

    @classmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PixelforgeError(f"{path}: cannot read the tokenizer ({exc})") from None
        return cls(data["vocab"], data.get("min_count", 1))
