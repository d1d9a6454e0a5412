"""The small records the mask readers share: an image/mask pair and a pairing problem (source.py and coco.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class MaskSample:
    image: Path
    mask: Path | None
    split: str | None = None


@dataclass
class PairProblem:
    """A pairing problem found while reading a layout: `kind` is missing_mask, missing_image, broken_link or
    unreadable."""

    kind: str
    path: str
    message: str
