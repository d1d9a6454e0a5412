"""Multi-scale feature extractors that put a timm encoder under torchvision's detectors.

torchvision's detectors want a `backbone` module that maps an image batch to an OrderedDict of feature maps and has
an `out_channels` attribute. timm's `features_only` encoders return a list of maps, one per stride, so two small
wrappers bridge them:

    TimmFPN         encoder maps at strides 8/16/32 -> Feature Pyramid Network (Lin et al. 2017, torchvision.ops),
                    plus the extra levels each family expects (max-pool P6 for Faster R-CNN, P6/P7 convs for
                    RetinaNet and FCOS)
    TimmSSDFeatures encoder maps at strides 8/16/32 + SSDlite's depthwise extra blocks (Sandler et al. 2018) for
                    the coarser scales; no FPN, each map keeps its own width

The encoder is always the attribute `body`, so strategies can freeze it and optimizers can give it its own
learning rate whatever the family.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, LastLevelMaxPool, LastLevelP6P7

# Encoder outputs used by every family: strides 8, 16 and 32 (timm feature indices 2, 3, 4). Stride 4 would help
# objects under ~12 px but costs a 4x larger map per FPN level; the built-in data has no objects that small.
OUT_INDICES = (2, 3, 4)


def create_encoder(name: str, pretrained: bool) -> nn.Module:
    """A timm `features_only` encoder returning the maps at OUT_INDICES (ImageNet weights downloaded by timm)."""
    import timm

    return timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=OUT_INDICES)


def fixed_roi_align(output_size: int, strides) -> nn.Module:
    """RoIAlign over FPN levels "0", "1", "2" whose strides are known from the encoder.

    torchvision's MultiScaleRoIAlign otherwise infers each level's scale from the first batch it sees, comparing
    the padded feature map with the largest image's height: a first batch of wide, short images makes it 2x wrong
    (0.25 instead of 0.125), and the wrong scale stays cached for every later image. On the CPU it pools with
    models/roi_align.py's matrix products (the same values, 6x faster to train).
    """
    import math

    from torchvision.ops.poolers import initLevelMapper

    from pixelforge.models.roi_align import FixedScaleRoIAlign

    pool = FixedScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=output_size, sampling_ratio=2)
    strides = [int(s) for s in strides][:3]
    pool.scales = [1.0 / s for s in strides]
    pool.map_levels = initLevelMapper(int(math.log2(strides[0])), int(math.log2(strides[-1])),
                                      canonical_scale=pool.canonical_scale, canonical_level=pool.canonical_level)
    return pool


class TimmFPN(nn.Module):
    """A timm encoder and an FPN: `forward(x)` -> OrderedDict {"0": P3, "1": P4, "2": P5, extra levels...}."""

    def __init__(self, body: nn.Module, out_channels: int, extra_blocks: ExtraFPNBlock | None):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(body.feature_info.channels(), out_channels, extra_blocks=extra_blocks)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(features)))


def fpn_extra_block(arch: str, out_channels: int) -> ExtraFPNBlock:
    """The extra coarse levels of each family, as in torchvision's own builders."""
    if arch == "fasterrcnn":
        return LastLevelMaxPool()  # "pool": P6 by stride-2 max-pool, used by the RPN only
    # RetinaNet v2 and FCOS compute P6 from P5 (not C5): equal widths make LastLevelP6P7 take P5.
    return LastLevelP6P7(out_channels, out_channels)


class TimmSSDFeatures(nn.Module):
    """A timm encoder and SSDlite extra blocks: maps at strides 8, 16, 32 and then 64, 128... (`extra` of them)."""

    def __init__(self, body: nn.Module, extra: tuple[int, ...] = (256, 128)):
        super().__init__()
        from torchvision.models.detection.ssdlite import _extra_block, _normal_init

        self.body = body
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)  # torchvision's SSDlite settings
        widths = [body.feature_info.channels()[-1], *extra]
        self.extra = nn.ModuleList(_extra_block(a, b, norm) for a, b in zip(widths[:-1], widths[1:]))
        _normal_init(self.extra)
        self.out_channels = [*body.feature_info.channels(), *extra]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = list(self.body(x))
        y = maps[-1]
        for block in self.extra:
            y = block(y)
            maps.append(y)
        return OrderedDict((str(i), m) for i, m in enumerate(maps))
