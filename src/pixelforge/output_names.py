"""The next free name for an output whose name is a default: NAME, then NAME-2, NAME-3... so nothing a user made is
overwritten; and a folder written beside its name and moved there when whole, so nothing is half-written. The lowest
layer, so the torch-free runtime numbers its outputs as the run folder does, and data commands stage as exports do."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from contextlib import contextmanager
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


def current_umask() -> int:
    """The process umask, read without changing it where the system says it (Linux: /proc/self/status), since
    `os.umask(0); os.umask(old)` briefly changes it for every thread."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


@contextmanager
def staged_folder(out: Path):
    """Yield a hidden sibling folder to write `out` in; it becomes `out` only if the block finishes, else it is
    removed, so an interrupted writer leaves nothing at `out`. It gets the mode `mkdir` would give (0777 less the
    umask), not mkdtemp's private 0700: a package or dataset is meant to be shared.

    `out` must not exist or be empty (checked by the caller, with a message that names it).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        yield staging
        if out.exists():
            out.rmdir()  # empty; the rename needs the name free
        staging.chmod(0o777 & ~current_umask())
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
