"""Thread settings for small per-image work on the CPU.

PyTorch runs every op on all its intra-op threads. For the per-image augmentations (a crop, a resize, a normalize on
one 224 px image) the fork/join costs more than the work: on 2 cores, measured 3x slower with 2 threads than with 1
on a quiet machine, and 50x slower when another process keeps a core busy (an OpenMP barrier waits for a thread that
is not scheduled). Stacking a batch (DataLoader's collate) is the same story: 32 images took 250 ms on 2 busy threads
and 3-12 ms on one. So per-image transforms and collation in the main process run on one thread; the model keeps all.
"""

from __future__ import annotations

import os

from contextlib import contextmanager

import torch
from torch.utils.data import default_collate


@contextmanager
def torch_threads(count: int):
    """Run the block with `count` PyTorch intra-op threads, then restore the previous setting."""
    before = torch.get_num_threads()
    if count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SingleThreaded:
    """Wrap a per-sample transform so it runs on one PyTorch thread (picklable, so DataLoader workers accept it).

    Example:
        >>> from torchvision.transforms import v2
        >>> flip = SingleThreaded(v2.RandomHorizontalFlip(p=1.0))
        >>> flip(torch.arange(4).reshape(1, 1, 4)).tolist()
        [[[3, 2, 1, 0]]]
    """

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, *args):
        with torch_threads(1):
            return self.transform(*args)

    def __repr__(self) -> str:
        return f"SingleThreaded({self.transform!r})"


def single_threaded(transform):
    """`transform` wrapped in `SingleThreaded` (None and already-wrapped transforms pass through)."""
    if transform is None or isinstance(transform, SingleThreaded):
        return transform
    return SingleThreaded(transform)


def single_threaded_collate(batch):
    """A DataLoader `collate_fn`: torch's `default_collate` on one PyTorch thread."""
    with torch_threads(1):
        return default_collate(batch)


def default_workers() -> int:
    """DataLoader workers when the config sets none."""
    # Images are decoded once into RAM, so workers only run augmentations; on a small machine a worker process
    # competes with the model for the same cores, measured slower on 2 cores (benchmarks/).
    cores = os.cpu_count() or 1
    return 0 if cores <= 4 else min(8, cores // 2)
