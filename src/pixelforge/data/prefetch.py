"""Decoding a run's photos in a helper process while `pixelforge train` is still importing torch.

The command spends its first seconds importing torch, torchvision, timm and Lightning Fabric on one core while the
second idles, and decoding the photos takes about a second of a core (245 hymenoptera photos). `start` hands the
photos to a helper process (`python -m pixelforge.data.prefetch`, which imports only numpy and Pillow) that decodes
them meanwhile, and `ImageDataset.preload` takes each image's pixels from it (`take`) instead of decoding it again.
A process, not a thread: a decoding thread beside the imports hid the decoding but slowed the imports by as much,
since it needs the GIL between Pillow's calls (issue 20, lever L26; docs/performance.md).

Nothing here changes a pixel: the helper writes `decode_array`'s result for the same file and size, which is what
`preload` would compute. An image the helper has not written (yet), could not read, or left out over the RAM
budget is decoded by `preload` as usual, and reported there by name. `pixelforge.train` starts it only when torch is not imported
yet (the command line, not a Python session that already paid for it), and never twice at once: `discard` ends the helper
and removes its files, and the helper exits by itself if the process that started it is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_state: dict = {}  # "process", "folder", "short_side", "index" ({path: file number}) while a helper runs


def start(paths: list[Path], short_side: int, budget_bytes: float) -> bool:
    """Start the helper on `paths` at `short_side` (in order) unless one is running. Returns whether it started."""
    if _state or not paths:
        return False
    shm = Path("/dev/shm")  # files in RAM where Linux has it; elsewhere the temp folder's page cache
    folder = Path(tempfile.mkdtemp(prefix="pixelforge-prefetch-", dir=shm if shm.is_dir() else None))
    job = {"paths": [str(p) for p in paths], "short_side": short_side, "budget_bytes": budget_bytes,
           "parent": os.getpid(), "folder": str(folder)}
    try:
        process = subprocess.Popen([sys.executable, "-m", "pixelforge.data.prefetch"], stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        process.stdin.write(json.dumps(job).encode())
        process.stdin.close()
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return False
    _state.update(process=process, folder=folder, short_side=short_side,
                  index={str(p): i for i, p in enumerate(paths)})
    return True


def take(path: Path, short_side: int) -> np.ndarray | None:
    """`path`'s pixels at `short_side` if the helper wrote them, else None (the caller decodes it)."""
    if not _state or short_side != _state["short_side"] or str(path) not in _state["index"]:
        return None
    file = _state["folder"] / f"{_state['index'][str(path)]}.npy"
    try:
        pixels = np.load(file)
    except (OSError, ValueError):  # not written (yet, or ever): decode it here
        # The helper is behind preload, which asks in the same order: from here on it would only decode images
        # preload decodes too, on the same cores. What it wrote stays to be taken.
        if _state["process"].poll() is None:
            _state["process"].kill()
        return None
    file.unlink(missing_ok=True)
    return pixels


def discard() -> None:
    """End the helper and delete what it wrote and nobody took."""
    if not _state:
        return
    process = _state["process"]
    if process.poll() is None:
        process.kill()
    process.wait()
    shutil.rmtree(_state["folder"], ignore_errors=True)
    _state.clear()


def running() -> bool:
    return bool(_state)


def _decode_all(job: dict) -> None:
    """The helper's work: each image to `<folder>/<n>.npy`, written whole (a temporary name, then renamed)."""
    from pixelforge.data.images import ImageReadError, decode_array

    folder, left = Path(job["folder"]), job["budget_bytes"]
    for number, path in enumerate(job["paths"]):
        if os.getppid() != job["parent"] or not folder.is_dir():  # the run is gone: leave nothing behind
            shutil.rmtree(folder, ignore_errors=True)
            return
        if left <= 0:
            return
        try:
            pixels = decode_array(path, job["short_side"])
        except ImageReadError:
            continue  # preload reads it again and reports it
        partial = folder / f"{number}.partial.npy"
        np.save(partial, pixels)
        os.replace(partial, folder / f"{number}.npy")
        left -= pixels.nbytes


if __name__ == "__main__":
    try:
        _decode_all(json.loads(sys.stdin.read()))
    except (OSError, ValueError, KeyError):
        sys.exit(1)  # the parent decodes whatever is missing
