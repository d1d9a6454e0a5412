"""Differentiable augmentation of the discriminator's inputs, real and generated alike (DiffAugment, Zhao et al.
2020): with ~1,300 training images a discriminator otherwise memorises the real set within a few epochs and its
gradients stop being useful to the generator. Both players see the augmented images, so the generator is not
pushed to produce the augmentations themselves."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def translate(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its size (whole pixels), filling with -1 (black in [-1, 1])."""
    n, _, h, w = x.shape
    shift = torch.randint(-int(h * ratio), int(h * ratio) + 1, (n, 2), device=x.device).float()
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2], theta[:, 1, 2] = 2 * shift[:, 0] / w, 2 * shift[:, 1] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) - 1


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Set one random square of `ratio` times the size per image to 0 (mid grey)."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h - size_h + 1, (n, 1, 1), device=x.device)
    left = torch.randint(0, w - size_w + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES = {"translation": translate, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """Apply the comma-separated `policy` ("translation,cutout"; "none" for nothing)."""
    for name in policy.split(","):
        if name and name != "none":
            x = POLICIES[name](x)
    return x
