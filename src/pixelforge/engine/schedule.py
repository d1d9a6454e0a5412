"""Optimizers and learning-rate schedules (warmup, then cosine decay or one-cycle), built from torch.optim."""

from __future__ import annotations

import math

import torch


def build_optimizer(name: str, groups: list[dict], lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=lr)


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int):
    """Per-step schedule. Warmup is linear from 1% of the target rate; cosine decays to zero at `total_steps`."""
    total_steps = max(1, total_steps)
    warmup_steps = min(warmup_steps, total_steps - 1)
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total_steps + 1,
            pct_start=max(warmup_steps / total_steps, 0.05),
        )

    def factor(step: int) -> float:
        if step < warmup_steps:
            return 0.01 + 0.99 * step / warmup_steps
        if name == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
