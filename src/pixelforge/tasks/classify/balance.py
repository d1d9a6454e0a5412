"""`--balance classes|groups`: re-weighted sampling, so rare classes or groups are drawn as often as common ones.

Each training image gets weight 1 / (size of its class or group); every epoch draws as many images as the
training set holds, with replacement, in proportion to those weights (torch's WeightedRandomSampler). The draw
comes from a generator seeded by (seed, epoch), like `EpochSampler`, so an interrupted run resumes on exactly
the same batches. Re-weighting is the mitigation of Kamiran & Calders (2012, "Data preprocessing techniques for
classification without discrimination") applied as resampling.
"""

from __future__ import annotations

import math
from collections import Counter

import torch

from pixelforge.data.groups import resolve_groups
from pixelforge.data.sources import Sample
from pixelforge.engine.loop import EpochSampler


class WeightedEpochSampler(EpochSampler):
    """`EpochSampler` drawing indices with replacement in proportion to `weights`, seeded per epoch.

    Example:
        >>> sampler = WeightedEpochSampler(torch.tensor([1.0, 1.0, 8.0]), seed=0)
        >>> len(list(sampler))
        3
    """

    def __init__(self, weights: torch.Tensor, seed: int, rank: int = 0, world: int = 1):
        super().__init__(len(weights), seed, rank, world)
        self.weights = torch.as_tensor(weights, dtype=torch.float64)

    def _indices(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.multinomial(self.weights, self.size, replacement=True, generator=generator).tolist()
        per_rank = math.ceil(self.size / self.world)
        order += order[: per_rank * self.world - self.size]
        return order[self.rank :: self.world][self.skip :]


def balance_keys(samples: list[Sample], balance: str, groups: str, origin: str) -> list[str]:
    """What is balanced for each sample: its class, or its group (from `groups`, a column or a mapping file)."""
    if balance == "classes":
        return [s.label for s in samples]
    return resolve_groups(samples, groups, origin)


def balance_weights(keys: list[str]) -> torch.Tensor:
    """Weight 1/count(key): every key then carries the same total weight."""
    counts = Counter(keys)
    return torch.tensor([1.0 / counts[k] for k in keys], dtype=torch.float64)


def check_balance(cfg, train_samples: list[Sample]) -> None:
    """Fail before training starts when `--balance groups` cannot find every training image's group."""
    if cfg.balance == "groups":
        balance_keys(train_samples, "groups", cfg.groups, cfg.data)


def build_train_sampler(cfg, samples: list[Sample], size: int, rank: int = 0, world: int = 1) -> EpochSampler:
    """The training sampler for `cfg.balance`; `size` may be a multiple of len(samples) (cached feature views,
    where index i is view i // n of sample i % n)."""
    if cfg.balance == "none":
        return EpochSampler(size, cfg.seed, rank, world)
    weights = balance_weights(balance_keys(samples, cfg.balance, cfg.groups, cfg.data))
    return WeightedEpochSampler(weights.repeat(size // len(samples)), cfg.seed, rank, world)
