"""A run's model_card.md, rewritten after every evaluation without losing what the user wrote in it.

The card invites edits ("edit the prose sections to fit your use"), and `pixelforge evaluate` rewrites it so that its
numbers are the latest. Both hold because pixelforge signs what it writes: the card's last line is an HTML comment
(invisible in rendered Markdown) with the SHA-256 of the text above it. On the next write:

- a missing card is written, signed;
- a card whose text still matches its signature (nobody edited it) is replaced by the new one, signed;
- an edited card (or one without a signature: written by hand, or before pixelforge signed cards) keeps every
  edit: only the sections the writer names as measured (metrics, compute, data counts, ...) are replaced by their
  new text, in place; the title block, the prose sections (intended use, limitations) and any section the user
  added stay as the user left them. Measured sections the card lacks are
  appended. The merged card is written unsigned, so it stays "edited" for every later write.

Sections are the card's `## ` headings, as all of pixelforge's cards are written.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from pixelforge.runs import folder as rd

log = logging.getLogger("pixelforge")
SIGNATURE = re.compile(r"\n?<!-- written by pixelforge; sha256 of the text above: ([0-9a-f]{64}) -->\s*\Z")


def _signed(text: str) -> str:
    text = text.rstrip("\n")
    return f"{text}\n<!-- written by pixelforge; sha256 of the text above: {_digest(text)} -->\n"


def _digest(text: str) -> str:
    return hashlib.sha256(text.rstrip("\n").encode()).hexdigest()


def card_text(path: Path) -> str:
    """The card's text without pixelforge's signature line (what an exported package's card starts from)."""
    return SIGNATURE.sub("", Path(path).read_text(encoding="utf-8", errors="replace")).rstrip("\n") + "\n"


def is_edited(text: str) -> bool:
    """Whether `text` (a whole card) differs from what pixelforge signed, or carries no signature at all."""
    match = SIGNATURE.search(text)
    return match is None or _digest(text[: match.start()]) != match.group(1)


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, block) pairs: the block before the first `## ` heading has heading "", each later block starts
    with its heading line. Joining the blocks gives `text` back."""
    blocks = re.split(r"(?m)^(?=## )", text)
    return [(block.splitlines()[0][3:].strip() if block.startswith("## ") else "", block) for block in blocks if block]


def write_card(path: Path, text: str, measured: tuple[str, ...]) -> Path:
    """Write the card `text` to `path`, keeping a user's edits of the existing card (module docstring). `measured`:
    the headings (without `## `) whose content pixelforge computes and refreshes even in an edited card."""
    path = Path(path)
    text = text.rstrip("\n") + "\n"
    if path.is_file():
        old = path.read_text(encoding="utf-8", errors="replace")
        if is_edited(old):
            merged = _merged(SIGNATURE.sub("", old).rstrip("\n") + "\n", text, measured)
            rd.atomic_write_bytes(path, lambda handle: handle.write(merged.encode()))
            log.info("%s has edits of yours: kept them, and refreshed its measured sections (%s)", path,
                     ", ".join(measured))
            return path
    rd.atomic_write_bytes(path, lambda handle: handle.write(_signed(text).encode()))
    return path


def _merged(old: str, new: str, measured: tuple[str, ...]) -> str:
    # A fresh section ends in one blank line, as the writers lay sections out between others.
    fresh = {heading: block.rstrip("\n") + "\n\n" for heading, block in sections(new) if heading in measured}
    kept = sections(old)
    present = {heading for heading, _ in kept}
    blocks = [fresh.get(heading, block) for heading, block in kept]
    blocks += [block for heading, block in fresh.items() if heading not in present]
    return "".join(block if block.endswith("\n") else block + "\n" for block in blocks).rstrip("\n") + "\n"
