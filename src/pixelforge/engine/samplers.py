"""Samplers: a seeded permutation per epoch, split across DDP processes, that can start part-way (for resume).

Training pads every process to the same number of batches: DDP averages gradients in lock-step, so a process
with one batch fewer would leave the others waiting. Validation must not pad: a padded image is scored twice, and
under DDP the logged accuracy would differ from one process's. Processes may then run one batch apart, which is
safe because validation runs under `no_grad` (no DDP collective per batch) and every task reduces its results
once, at the end.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Sampler


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
