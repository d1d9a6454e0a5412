"""Pixel attributions from captum: vanilla gradients (Simonyan et al. 2014) and Integrated Gradients
(Sundararajan et al. 2017).

Both give a value per input pixel and channel; a heat map takes the largest absolute channel value (saliency)
or the sum of absolute values (integrated gradients), then scales each map to [0, 1] with the 99th percentile as
the top, because a handful of extreme pixels would otherwise leave the rest of the map black.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _to_unit(maps: torch.Tensor) -> np.ndarray:
    flat = maps.flatten(1)
    top = torch.quantile(flat, 0.99, dim=1).clamp_min(1e-12)
    return (maps / top[:, None, None]).clamp(0, 1).cpu().numpy().astype(np.float32)


def attribution_heatmaps(model: nn.Module, x: torch.Tensor, targets: list[int], method: str = "saliency",
                         steps: int = 32) -> np.ndarray:
    """Heat maps (N, H, W) in [0, 1]. Integrated gradients start from the all-zero (mean-colour) input."""
    from captum.attr import IntegratedGradients, Saliency

    model.eval()
    inputs = x.detach().clone().requires_grad_(True)
    target = torch.as_tensor(list(targets), dtype=torch.long, device=x.device)
    with torch.enable_grad():
        if method == "saliency":
            maps = Saliency(model).attribute(inputs, target=target, abs=True).amax(1)
        elif method == "integrated-gradients":
            attr = IntegratedGradients(model).attribute(inputs, baselines=torch.zeros_like(inputs), target=target,
                                                        n_steps=steps, internal_batch_size=64)
            maps = attr.abs().sum(1)
        else:
            raise ValueError(f"unknown attribution method {method!r}")
    return _to_unit(maps.detach().float())
