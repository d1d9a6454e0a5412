"""Caption metrics: corpus BLEU-1..4 (Papineni et al. 2002) against all references of an image, and the built-in
set's attribute match.

BLEU is written out here (40 lines, float64) rather than taken from torchmetrics' `BLEUScore`, our dependency:
that one computes in float32 and counts no n-grams for a hypothesis shorter than n words where nltk counts one
(a denominator of at least 1 per sentence), which moved BLEU-4 by 2.2 points on a 3-caption fixture against `nltk.translate.bleu_score.corpus_bleu`, the
reference implementation this must equal (tests/tasks/test_caption_metrics.py checks 1e-6). Same definition as
nltk: clipped n-gram precisions summed over the corpus, geometric mean with uniform weights, brevity penalty
from the closest reference length (the shorter on ties), no smoothing; 0 when some precision is 0. Words are the
tokenizer's (lower case, punctuation dropped), on the 0-100 scale.

Attribute match (built-in shapes set): a caption matches when the multiset of (colour, shape) pairs it names,
each shape word with the colour word just before it, equals the image's objects' pairs — every object named with
its right colour and shape, none missed, none invented. Sizes and places are left to BLEU.

CIDEr-D (Vedantam et al. 2015) comes from `pycocoevalcap`, the COCO caption evaluation code, when it is installed
(the `caption` extra; pure Python). It gets the tokenizer's words joined by spaces (in place of the Stanford PTB
tokenizer that pycocoevalcap's own scripts run through Java) and is given x 100, like BLEU. pycocoevalcap's METEOR
is not reported: it talks to a Java process over pipes and, run under pytest, hung with the process idle (it
worked from a plain python process), so it cannot be tested here.
"""

from __future__ import annotations

import math
from collections import Counter

from pixelforge.data.captions.tokenizer import words


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu_statistics(hypotheses: list[str], references: list[list[str]], max_n: int = 4) -> list[float]:
    """The sums corpus BLEU is made of: [matches 1..n, totals 1..n, hypothesis length, reference length]; sums of
    shards (validation under DDP) give the corpus's."""
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references, strict=True):
        h, rs = words(hyp), [words(r) for r in refs]
        hyp_len += len(h)
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rs)[1] if rs else 0
        for n in range(1, max_n + 1):
            counts = _ngrams(h, n)
            best: Counter = Counter()
            for r in rs:
                best |= _ngrams(r, n)  # the most times any one reference has each n-gram
            matches[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            totals[n - 1] += max(len(h) - n + 1, 1)  # nltk's floor of one n-gram per sentence
    return [*matches, *totals, hyp_len, ref_len]


def bleu_from_statistics(stats, max_n: int = 4) -> dict[str, float]:
    matches, totals = [float(v) for v in stats[:max_n]], [float(v) for v in stats[max_n:2 * max_n]]
    hyp_len, ref_len = float(stats[2 * max_n]), float(stats[2 * max_n + 1])
    brevity = 1.0 if hyp_len > ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len else 0.0)
    scores = {}
    for n in range(1, max_n + 1):
        if min(matches[:n]) == 0:
            scores[f"bleu{n}"] = 0.0
            continue
        log_precision = sum(math.log(matches[k] / totals[k]) for k in range(n)) / n
        scores[f"bleu{n}"] = 100.0 * brevity * math.exp(log_precision)
    return scores


def corpus_bleu(hypotheses: list[str], references: list[list[str]], max_n: int = 4) -> dict[str, float]:
    """{"bleu1": ..., "bleu4": ...} on the 0-100 scale; `references[i]` are all true captions of image i.

    Example:
        >>> corpus_bleu(["a red circle"], [["a red circle", "one red circle"]], max_n=3)["bleu3"]
        100.0
    """
    return bleu_from_statistics(bleu_statistics(hypotheses, references, max_n), max_n)


def attribute_match(hypotheses: list[str], objects: list[list[dict]]) -> float:
    """Share of captions naming exactly the right (colour, shape) pairs (module docstring), 0-1."""
    from pixelforge.data.captions.shapes import attribute_pairs

    hits = [attribute_pairs(h) == sorted(((o["colour"], o["shape"]) for o in objs)) for h, objs in zip(hypotheses, objects)]
    return sum(hits) / max(len(hits), 1)


def coco_scores(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """{"cider": CIDEr-D x 100} from pycocoevalcap; {} when it is not installed, so callers report what this
    machine can compute."""
    try:
        from pycocoevalcap.cider.cider import Cider
    except ImportError:
        return {}
    gts = {i: [" ".join(words(r)) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(words(h))] for i, h in enumerate(hypotheses)}
    return {"cider": 100.0 * float(Cider().compute_score(gts, res)[0])}
