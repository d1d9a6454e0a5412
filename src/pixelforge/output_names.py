"""The next free name for an output whose name is a default: NAME, then NAME-2, NAME-3... so nothing a user made is
overwritten. The lowest layer, so the torch-free runtime numbers its outputs as the run folder does."""

from __future__ import annotations

import itertools
from pathlib import Path


def numbered(base: Path, keep_suffix: bool):
    """`base`, then `base-2`, `base-3`... (`stem-2.png` with `keep_suffix`: a file keeps its extension)."""
    yield base
    stem, suffix = (base.stem, base.suffix) if keep_suffix else (base.name, "")
    for n in itertools.count(2):
        yield base.with_name(f"{stem}-{n}{suffix}")


def new_file_path(path: str | Path) -> Path:
    """`path`, or `stem-2.ext`, `stem-3.ext`... when it already exists: for outputs whose name is a default."""
    return next(c for c in numbered(Path(path), keep_suffix=True) if not c.exists())
