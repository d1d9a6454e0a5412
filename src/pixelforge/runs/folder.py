"""The run folder: where a run's config, metrics, checkpoints and report live, never silently overwritten.

    runs/NAME/config.yaml  classes.json  metrics.csv  summary.json  tensorboard/  checkpoints/{last,best}.ckpt
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

import torch

from pixelforge.errors import PixelforgeError


def new_run_dir(out: str | Path) -> Path:
    """Create `out`, or `out-2`, `out-3`... when it already exists: a finished run is never overwritten."""
    base = Path(out)
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    (candidate / "checkpoints").mkdir(parents=True, exist_ok=True)
    return candidate


def atomic_write_bytes(path: Path, write) -> None:
    """Write via a temp file in the same folder and rename, so a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(state: dict, path: Path) -> None:
    atomic_write_bytes(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise PixelforgeError(f"{path}: checkpoint not found; is this a pixelforge run folder?")
    # weights_only=False: our own checkpoints hold RNG states (numpy arrays); never load one you did not write.
    return torch.load(path, map_location="cpu", weights_only=False)


def write_json(path: Path, data) -> None:
    atomic_write_bytes(path, lambda handle: handle.write(json.dumps(data, indent=2).encode()))


def read_json(path: Path):
    return json.loads(path.read_text())


def append_metrics(path: Path, row: dict) -> None:
    """Add one epoch's row. A row whose columns differ from the file's (a run resumed by a version that logs other
    columns) rewrites the file with the union of both, empty where a row has no value, so no value shifts column."""
    header = _header(path)
    if header is not None and header != list(row):
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        columns = header + [key for key in row if key not in header]
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows([*rows, row])
        return
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if header is None:
            writer.writeheader()
        writer.writerow(row)


def _header(path: Path) -> list[str] | None:
    if not path.exists():
        return None
    with open(path, newline="") as handle:
        return next(csv.reader(handle), None)


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [{k: float(v) if v not in ("", None) else None for k, v in row.items()} for row in csv.DictReader(handle)]


def require_run(run_dir: str | Path) -> Path:
    path = Path(run_dir)
    if not (path / "config.yaml").is_file() or not (path / "classes.json").is_file():
        raise PixelforgeError(f"{path}: not a pixelforge run folder (no config.yaml/classes.json); pass the folder `train --out` made")
    return path
