"""MobileNetV2/EfficientNet-style networks described by their name, for architecture search (`pixelforge nas`).

A name such as `nas_w0.75_d1-2-2-1_k3-5-3-5_e3-6-6-6_se0-1-1-0` is the architecture: width multiplier, then per
stage the depth (blocks), depthwise kernel, expansion ratio and squeeze-excitation on/off. Because the name holds
the whole spec, a run's config.yaml rebuilds its model anywhere (evaluate, predict, export), with no registry
entry to create first. timm's EfficientNet builder makes the network from the same block strings the EfficientNet
and MobileNet papers' tables use (`ir_r2_k5_s2_e6_c40_se0.25`), so no block is written here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pixelforge.errors import PixelforgeError

PREFIX = "nas_"
CHANNELS = (16, 24, 40, 80)  # per stage at width 1.0 (MobileNetV2's first stages: small inputs need few stages)
STRIDES = (1, 2, 2, 2)
STEM, HEAD = 16, 256
_NAME = re.compile(r"^nas_w(?P<w>[0-9.]+)_d(?P<d>[0-9-]+)_k(?P<k>[0-9-]+)_e(?P<e>[0-9-]+)_se(?P<se>[01-]+)$")


@dataclass(frozen=True)
class Arch:
    width: float
    depth: tuple[int, ...]
    kernel: tuple[int, ...]
    expand: tuple[int, ...]
    se: tuple[int, ...]

    @property
    def name(self) -> str:
        join = lambda xs: "-".join(str(x) for x in xs)  # noqa: E731
        return f"{PREFIX}w{self.width:g}_d{join(self.depth)}_k{join(self.kernel)}_e{join(self.expand)}_se{join(self.se)}"


def parse(name: str) -> Arch:
    """The architecture a `nas_...` name describes; a malformed name is a one-line error.

    Example:
        >>> parse("nas_w0.5_d1-1-2-1_k3-3-5-5_e3-3-6-6_se0-0-1-1").kernel
        (3, 3, 5, 5)
    """
    match = _NAME.match(name)
    parts = None
    if match:
        parts = [tuple(int(v) for v in match[g].split("-")) for g in ("d", "k", "e", "se")]
    if not match or any(len(p) != len(CHANNELS) for p in parts) or not 0 < float(match["w"]) <= 4:
        raise PixelforgeError(f"model {name!r}: a NAS architecture is nas_w<width>_d<4 depths>_k<4 kernels>_e<4 "
                              f"expansions>_se<4 0/1>, e.g. nas_w1_d1-2-2-1_k3-5-3-5_e3-6-6-6_se0-1-1-0")
    return Arch(float(match["w"]), *parts)


def build_nas_backbone(name: str):
    """(backbone returning pooled features, their width) for a `nas_...` name, built by timm."""
    from functools import partial

    from timm.models._efficientnet_builder import decode_arch_def, round_channels
    from timm.models.efficientnet import EfficientNet

    arch = parse(name)
    stages = [[f"ir_r{d}_k{k}_s{s}_e{e}_c{c}" + ("_se0.25" if se else "")]
              for d, k, e, se, c, s in zip(arch.depth, arch.kernel, arch.expand, arch.se, CHANNELS, STRIDES)]
    model = EfficientNet(decode_arch_def(stages), num_classes=0, stem_size=STEM,
                         num_features=round_channels(HEAD, arch.width),
                         round_chs_fn=partial(round_channels, multiplier=arch.width))
    return model, model.num_features
