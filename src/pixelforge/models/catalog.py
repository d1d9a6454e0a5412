"""The rows of `pixelforge models`: parameters and GFLOPs measured on the meta device (no memory, no weights)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from pixelforge.models.registry import BACKBONES, list_backbones


def count_flops(model: torch.nn.Module, img_size: int) -> float:
    """GFLOPs (multiply and add counted separately) of one forward pass at `img_size`."""
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, img_size, img_size, device=next(model.parameters()).device))
    return counter.get_total_flops() / 1e9


def model_size(model: str, num_classes: int, img_size: int) -> tuple[float, float]:
    """(parameters in millions, GFLOPs per image at `img_size`) of classifier `model`, counted on the meta device."""
    from pixelforge.models.classifier import build_classifier

    with torch.device("meta"):  # builds the architecture only: instant, and never downloads weights
        network = build_classifier(model, num_classes, weights="none").eval()
        flops = count_flops(network, img_size)
    return sum(p.numel() for p in network.parameters()) / 1e6, flops


def describe_backbones(img_size: int = 224) -> list[dict]:
    rows = []
    for name in list_backbones():
        spec = BACKBONES[name]
        params_m, gflops = model_size(name, 1000, max(img_size, spec.min_size))
        rows.append({"name": name, "params_m": params_m, "gflops": gflops, "min_size": spec.min_size,
                     "weights_from": spec.weights_from, "source": spec.source})
    return rows
