"""models/roi_align.py: RoIAlign as matrix products gives torchvision's values and gradients."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

from pixelforge.models.roi_align import FixedScaleRoIAlign, separable_roi_align


def _regions(count: int, images: int, map_hw: tuple[int, int], stride: int, seed: int = 0) -> torch.Tensor:
    """Regions of every kind torchvision's kernel treats apart: inside, thinner than a cell, partly and wholly
    outside the map, on its last row and column, in shuffled image order."""
    g = torch.Generator().manual_seed(seed)
    height, width = map_hw[0] * stride, map_hw[1] * stride
    corner = torch.rand(count, 2, generator=g) * torch.tensor([width + 20.0, height + 20.0]) - 10
    size = torch.rand(count, 2, generator=g) * torch.tensor([width / 1.5, height / 1.5])
    boxes = torch.cat([corner, corner + size], 1)
    boxes[:3] = torch.tensor([[2.0, 2.0, 2.4, 2.3]])  # under one cell
    boxes[3:6] = torch.tensor([[width + 20.0, height + 20.0, width + 90.0, height + 70.0]])  # off the map
    boxes[6:9] = torch.tensor([[-40.0, -30.0, 9.0, 7.0]])  # partly outside, above and left
    boxes[9:12] = torch.tensor([[width - 1.0, height - 3.0, width + 6.0, height + 5.0]])  # the last row and column
    image = torch.randint(0, images, (count, 1), generator=g).float()
    return torch.cat([image, boxes], 1).double()


@pytest.mark.parametrize("output_size", [(7, 7), (14, 14), (3, 5)])
def test_values_and_gradients_are_torchvisions(output_size):
    features = torch.randn(3, 5, 11, 13, dtype=torch.float64, requires_grad=True)
    rois = _regions(60, 3, (11, 13), 8)
    ours = separable_roi_align(features, rois, output_size, 1 / 8, 2)
    theirs = roi_align(features, rois, output_size, 1 / 8, 2, aligned=False)
    assert torch.allclose(ours, theirs, atol=1e-12)
    upstream = torch.randn_like(theirs)
    ours_grad, = torch.autograd.grad((ours * upstream).sum(), features)
    theirs_grad, = torch.autograd.grad((theirs * upstream).sum(), features)
    assert torch.allclose(ours_grad, theirs_grad, atol=1e-12)


def test_the_multi_level_pool_matches_torchvisions_in_float32_and_under_bf16_autocast():
    names = ["0", "1", "2"]
    levels = OrderedDict((n, torch.randn(2, 8, 24 >> i, 20 >> i)) for i, n in enumerate(names))
    g = torch.Generator().manual_seed(1)
    boxes = []
    for _ in range(2):
        corner = torch.rand(40, 2, generator=g) * 150
        boxes.append(torch.cat([corner, corner + 4 + torch.rand(40, 2, generator=g) * 120], 1))
    ours, theirs = FixedScaleRoIAlign(names, 7, 2), MultiScaleRoIAlign(names, 7, 2)
    shapes = [(192, 160)] * 2
    theirs(levels, boxes, shapes)  # infers scales and levels from the first batch (192 px: exact here)
    ours.scales, ours.map_levels = theirs.scales, theirs.map_levels
    assert torch.allclose(ours(levels, boxes, shapes), theirs(levels, boxes, shapes), atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = OrderedDict((n, v.bfloat16()) for n, v in levels.items())
        mine, reference = ours(half, boxes, shapes), theirs(half, boxes, shapes)
    assert mine.dtype == reference.dtype == torch.bfloat16
    assert torch.allclose(mine.float(), reference.float(), atol=1e-2)
