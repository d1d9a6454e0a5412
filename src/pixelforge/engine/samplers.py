"""Samplers: a seeded permutation per epoch, split across DDP processes, that can start part-way (for resume).

With DataLoader workers, `ItemSeeds` and `SeededItems` seed each training item's randomness (augmentations, crops)
from its place in the run, not from the worker's stream: the streams of persistent workers go on across epochs and
are not in checkpoints, so a resumed run drew other augmentations than an uninterrupted one.

Training pads every process to the same number of batches: DDP averages gradients in lock-step, so a process
with one batch fewer would leave the others waiting. Validation must not pad: a padded image is scored twice, and
under DDP the logged accuracy would differ from one process's. Processes may then run one batch apart, which is
safe because validation runs under `no_grad` (no DDP collective per batch) and every task reduces its results
once, at the end.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, sharded across ranks, that can start part-way through (for resume).

    `pad=False` (validation) shards without repeating indices: rank r takes r::world of the permutation.

    Example:
        >>> [len(EpochSampler(5, seed=0, rank=r, world=2, pad=False)) for r in (0, 1)]
        [3, 2]
        >>> [len(EpochSampler(5, seed=0, rank=r, world=2)) for r in (0, 1)]
        [3, 3]
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1, pad: bool = True):
        self.size, self.seed, self.rank, self.world, self.pad = size, seed, rank, world, pad
        self.epoch, self.skip = 0, 0

    def set_position(self, epoch: int, skip: int) -> None:
        self.epoch, self.skip = epoch, skip

    def _order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def _indices(self) -> list[int]:
        order = self._order()
        if self.pad and order:  # every rank runs the same number of steps (repeating, when ranks outnumber images)
            missing = math.ceil(self.size / self.world) * self.world - self.size
            order += (order * math.ceil(missing / self.size))[:missing]
        return order[self.rank :: self.world][self.skip :]

    def __iter__(self):
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())


class ItemSeeds(Sampler):
    """A training sampler's items, each with its place in the run: (epoch, position in the epoch, item).

    It takes the sampler's place in the loop (`set_position` is passed on), and `SeededItems` reads the keys.
    """

    def __init__(self, sampler):
        self.sampler, self.epoch, self.skip = sampler, 0, 0

    def set_position(self, epoch: int, skip: int) -> None:
        self.epoch, self.skip = epoch, skip
        self.sampler.set_position(epoch, skip)

    def __iter__(self):
        epoch, skip = self.epoch, self.skip
        return ((epoch, skip + n, item) for n, item in enumerate(self.sampler))

    def __len__(self) -> int:
        return len(self.sampler)


class SeededItems(Dataset):
    """`dataset[item]` with torch's, numpy's and Python's RNGs seeded from (seed, rank, epoch, position) first: in
    a DataLoader worker, so an item's augmentation depends on where it is in the run, not on which worker read it
    or what that worker read before (a resumed run's new workers start new streams)."""

    def __init__(self, dataset, seed: int, rank: int = 0):
        self.dataset, self.seed, self.rank = dataset, seed, rank

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, position, item = key
        seed = int(np.random.SeedSequence([self.seed, self.rank, epoch, position]).generate_state(1)[0])
        torch.default_generator.manual_seed(seed)  # the CPU's only: torch.manual_seed's device checks cost 100x more
        np.random.seed(seed)
        random.seed(seed)
        return self.dataset[item]
