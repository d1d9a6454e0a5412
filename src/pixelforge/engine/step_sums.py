"""The epoch's training metrics: every scalar a training step returns, as a count-weighted mean.

A step returns `count` (samples in the batch) and any scalars (python numbers or one-element tensors), each the
batch's mean: `loss`, `acc`, `loss_d`, ... The epoch's value of `key` is sum(value * count) / sum(count), logged
as `train_<key>`. Tensor values are summed on their device: reading one (`float()`, `.item()`) would wait for the
device after every batch; the sums are read once per epoch, all-reduced across processes.

Sums are float64 (the exact hit counts classification's accuracy needs), float32 on Apple's MPS, which has no
float64. One key keeps the older protocol's meaning: `correct`, a sum of hits rather than a mean, is added
unweighted to `acc` (sum(acc * count) is exactly the hit count), so steps written for it log `train_acc` as before.
"""

from __future__ import annotations

import numbers

import torch


def is_scalar(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    return isinstance(value, numbers.Number)


class StepSums:
    """Running count-weighted sums of a step's scalars, kept where the values are.

    Example:
        >>> sums = StepSums(torch.device("cpu"))
        >>> sums.add({"loss": torch.tensor(2.0), "count": 4})
        >>> sums.add({"loss": torch.tensor(1.0), "count": 4})
        >>> sums.means(sums.totals())
        {'loss': 1.5}
    """

    def __init__(self, device: torch.device, initial: dict[str, float] | None = None):
        self.device = device
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.sums: dict = {"count": 0.0, **dict(initial or {})}

    def add(self, out: dict) -> None:
        count = out.get("count", 1)
        for key, value in out.items():
            if key == "count" or not is_scalar(value):
                continue
            weight = count
            if key == "correct":  # the older protocol: already a sum (see the module docstring)
                key, weight = "acc", 1
            if isinstance(value, torch.Tensor):
                value = value.detach().reshape(()).to(self.dtype)
            self.sums[key] = self.sums.get(key, 0.0) + value * weight
        self.sums["count"] = self.sums["count"] + count

    def value(self, key: str) -> float | None:
        """The running mean of `key` (reads the device: for a progress bar refreshed now and then, not per batch)."""
        if key not in self.sums:
            return None
        return float(self.sums[key]) / max(float(self.sums["count"]), 1.0)

    def totals(self, all_reduce=None) -> dict[str, float]:
        """The sums as python floats, summed over processes when `all_reduce(tensor)` is given (Fabric's)."""
        keys = sorted(self.sums)  # the same order on every process
        stacked = torch.stack([torch.as_tensor(self.sums[k], dtype=self.dtype).to(self.device) for k in keys])
        if all_reduce is not None:
            stacked = all_reduce(stacked)
        values = stacked.cpu().tolist()
        # Insertion order (loss first, then what the step returned) is the metrics.csv column order.
        return {key: values[keys.index(key)] for key in self.sums}

    @staticmethod
    def means(totals: dict[str, float]) -> dict[str, float]:
        count = max(totals.get("count", 0.0), 1.0)
        return {key: value / count for key, value in totals.items() if key != "count"}
