"""Seeded, stratified train/val/test splits that never put one image in two splits.

Exact duplicates (same bytes) are grouped by content hash before splitting, so a photo saved twice under two
names always lands on one side: otherwise validation accuracy silently measures memorisation.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from pixelforge.data.sources import DataSource, Sample
from pixelforge.errors import PixelforgeError


def content_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return f"unreadable:{path}"
    return digest.hexdigest()


def check_class_sizes(samples: list[Sample], origin: str, minimum: int = 2) -> None:
    counts = Counter(s.label for s in samples)
    small = sorted(label for label, n in counts.items() if n < minimum)
    if small:
        raise PixelforgeError(
            f"{origin}: class {small[0]!r} has only {counts[small[0]]} image(s); every class needs at least {minimum} "
            "to be split and evaluated: add images or remove that class"
        )


def make_splits(source: DataSource, val_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0) -> DataSource:
    """Give every sample without a split one of train/val/test, stratified by label and seeded.

    Samples that already carry a split keep it. Example:
        >>> from pixelforge.data.sources import DataSource, Sample
        >>> src = DataSource([Sample(Path(f"{i}.png"), "ab"[i % 2]) for i in range(10)], ["a", "b"], "mem")
        >>> sorted(Counter(s.split for s in make_splits(src, 0.2).samples).items())
        [('train', 8), ('val', 2)]
    """
    unsplit = [s for s in source.samples if s.split is None]
    if not unsplit:
        return source
    if not 0 < val_fraction + test_fraction < 1:
        raise PixelforgeError(f"val_fraction + test_fraction must be between 0 and 1, got {val_fraction + test_fraction}")
    check_class_sizes(unsplit, source.origin)
    rng = np.random.default_rng(seed)
    # Group identical files: the unit that is split is the set of copies, keyed by hash.
    by_hash: dict[str, list[Sample]] = defaultdict(list)
    for sample in unsplit:
        key = content_hash(sample.path) if sample.path.exists() else str(sample.path)
        by_hash[key].append(sample)
    groups_by_label: dict[str, list[list[Sample]]] = defaultdict(list)
    for copies in by_hash.values():
        groups_by_label[copies[0].label].append(copies)
    assigned: dict[Path, str] = {}
    for label in sorted(groups_by_label):
        groups = groups_by_label[label]
        order = rng.permutation(len(groups))
        n = len(groups)
        n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
        n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
        n_val = min(n_val, max(n - n_test - 1, 0))
        for rank, index in enumerate(order):
            split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
            for sample in groups[index]:
                assigned[sample.path] = split
    samples = [s if s.split is not None else replace(s, split=assigned[s.path]) for s in source.samples]
    return DataSource(samples, source.classes, source.origin, list(source.broken_links))
