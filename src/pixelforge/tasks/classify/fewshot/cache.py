"""Embeddings of a whole dataset kept on disk, so a second episodic evaluation of the same images skips the backbone.

The key is everything the vectors depend on: the backbone, its weights (a weights file by size and mtime), the input
size, TTA, and every image's path, size and modification time; a changed or added image makes a new key, never a
stale answer. Files live in `$PIXELFORGE_HOME/fewshot-embeddings/` (the built-in datasets' cache root) and are
written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch

from pixelforge.data.builtin import cache_root
from pixelforge.runs.folder import atomic_write_bytes

log = logging.getLogger("pixelforge")
_VERSION = 1  # bump when the embedding code changes what it computes


def _stamp(path: Path) -> list:
    stat = Path(path).stat()
    return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]


def cache_key(options, samples) -> str:
    weights = options.weights
    described = {**asdict(options), "version": _VERSION, "batch_size": None,
                 "weights_file": _stamp(weights) if weights not in ("imagenet", "none") else None,
                 "images": [_stamp(s.path) for s in samples]}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]


def cached_embeddings(options, samples, compute) -> torch.Tensor:
    """`compute()` unless embeddings for exactly these images and options were stored before."""
    path = cache_root() / "fewshot-embeddings" / f"{cache_key(options, samples)}.pt"
    if path.is_file():
        try:
            vectors = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(vectors, torch.Tensor) and len(vectors) == len(samples):
                log.info("embeddings of %d images read from the cache %s", len(samples), path)
                return vectors
        except Exception:  # noqa: BLE001 - a damaged cache file is recomputed, never trusted
            log.warning("ignoring an unreadable embedding cache %s", path)
    vectors = compute()
    buffer = io.BytesIO()
    torch.save(vectors, buffer)
    atomic_write_bytes(path, lambda handle: handle.write(buffer.getvalue()))
    return vectors
