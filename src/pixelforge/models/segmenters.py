"""Semantic segmenters: an ImageNet-pretrained encoder plus a decoder that predicts a class for every pixel.

`build_segmenter` is the one factory. Five architectures:
    unet           U-Net (Ronneberger et al. 2015) on any timm encoder, via segmentation-models-pytorch
    fpn            Feature Pyramid Network decoder (Kirillov et al. 2019, "Panoptic FPN"), via smp
    deeplabv3plus  DeepLabV3+ (Chen et al. 2018): atrous pyramid pooling plus a light decoder, via smp
    deeplabv3      torchvision's DeepLabV3 on MobileNetV3-Large (Chen et al. 2017)
    lraspp         torchvision's Lite R-ASPP on MobileNetV3-Large (Howard et al. 2019), the fastest
The smp models use timm encoders by name (`tu-<backbone>`); the default `tf_efficientnet_lite0` gets the bundled
ImageNet weights, so nothing is downloaded. torchvision's two models always use their own MobileNetV3-Large
backbone; its ImageNet weights come from torchvision's download cache, with a one-line offline error naming the file
(rebuilding them on Lite0 features would be a third decoder implementation to maintain for no gain over `fpn`).

Every segmenter returns logits [B, K, H, W] at the input's resolution, for any H, W: smp decoders need sides
divisible by the encoder's stride (32), so the input is padded and the logits cropped back.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pixelforge.errors import PixelforgeError
from pixelforge.models import weights as weight_io
from pixelforge.models.registry import get_spec

SMP_ARCHS = {"unet": "Unet", "fpn": "FPN", "deeplabv3plus": "DeepLabV3Plus"}
TORCHVISION_ARCHS = {"deeplabv3": "deeplabv3_mobilenet_v3_large", "lraspp": "lraspp_mobilenet_v3_large"}
ARCHS = [*SMP_ARCHS, *TORCHVISION_ARCHS]
# Names a user may give as --model for the torchvision architectures (the default model name is accepted too,
# since a config that only sets arch still carries it).
_TV_BACKBONES = {"mobilenet_v3_large", "tv_mobilenet_v3_large", "tf_efficientnet_lite0"}
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Segmenter(nn.Module):
    """A segmentation network with its encoder/decoder split and the input normalisation it was trained with."""

    def __init__(self, net: nn.Module, arch: str, backbone: str, num_classes: int, in_channels: int,
                 mean: tuple[float, ...], std: tuple[float, ...], stride: int):
        super().__init__()
        self.net = net
        self.arch, self.backbone_name, self.num_classes, self.in_channels = arch, backbone, num_classes, in_channels
        self.mean, self.std = tuple(mean), tuple(std)
        self.stride = stride  # input sides must be multiples of this (1: any size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.stride, -width % self.stride
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        out = self.net(x)
        if isinstance(out, dict):  # torchvision segmentation models return {"out": logits[, "aux"]}
            out = out["out"]
        return out[..., :height, :width]

    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder if self.arch in SMP_ARCHS else self.net.backbone

    def pretrained_module(self) -> nn.Module:
        """The encoder: what fine-tuning strategies freeze or slow down (decoder and head are new)."""
        return self.encoder

    def stages(self) -> list[list[nn.Parameter]]:
        """Encoder parameters grouped by stage, input side first (for gradual unfreezing)."""
        encoder = self.encoder.model if self.arch in SMP_ARCHS else self.encoder
        if hasattr(encoder, "blocks"):  # timm EfficientNet/MobileNet-style: stem, then each block stage
            stem = [p for name, p in encoder.named_parameters() if not name.startswith("blocks.")]
            return [stem, *[list(block.parameters()) for block in encoder.blocks]]
        children = [list(c.parameters()) for c in encoder.children()]
        return [params for params in children if params]


def build_segmenter(arch: str, backbone: str = "tf_efficientnet_lite0", num_classes: int = 2, in_channels: int = 3,
                    weights: str = "imagenet") -> Segmenter:
    """Build segmentation architecture `arch` with `weights` (imagenet | none | an encoder weights file).

    A weights file holds a timm backbone state dict (e.g. a pixelforge classification checkpoint of the same model).

    Example:
        >>> model = build_segmenter("unet", num_classes=3, weights="none")
        >>> model(torch.zeros(1, 3, 40, 56)).shape
        torch.Size([1, 3, 40, 56])
    """
    if arch not in ARCHS:
        raise PixelforgeError(f"unknown segmentation arch {arch!r}: use one of {', '.join(ARCHS)}")
    if num_classes < 2:
        raise PixelforgeError(f"segmentation needs at least 2 classes (background and one more), got {num_classes}")
    if in_channels < 1:
        raise PixelforgeError(f"in_channels must be at least 1, got {in_channels}")
    if arch in SMP_ARCHS:
        return _build_smp(arch, backbone, num_classes, in_channels, weights)
    return _build_torchvision(arch, backbone, num_classes, in_channels, weights)


def _build_smp(arch: str, backbone: str, num_classes: int, in_channels: int, weights: str) -> Segmenter:
    import segmentation_models_pytorch as smp

    spec = get_spec(backbone)
    if spec.source != "timm":
        raise PixelforgeError(f"--arch {arch} needs a timm encoder; {backbone!r} is not one (try tf_efficientnet_lite0, "
                              f"resnet18, resnet50, mobilenetv3_large_100, efficientnet_b0)")
    bundled = weights == "imagenet" and weight_io.is_bundled(spec.name)
    hub = weights == "imagenet" and not bundled
    try:
        # Built with 3 input channels so the pretrained stem can be adapted below instead of re-initialised.
        net = getattr(smp, SMP_ARCHS[arch])(encoder_name=f"tu-{spec.library_name}", encoder_weights="imagenet" if hub else None,
                                            in_channels=3, classes=num_classes)
    except PixelforgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - hub/network errors come in many types
        if hub:
            raise weight_io.offline_hint_timm(spec.library_name, exc) from None
        raise PixelforgeError(f"cannot build {arch} on encoder {backbone!r}: {exc}") from None
    timm_model = net.encoder.model  # a timm features_only model: same parameter names as the plain timm network
    if bundled:
        timm_model.load_state_dict(weight_io.bundled_imagenet_state_dict(timm_model, spec.name))
    elif weights not in ("imagenet", "none"):
        weight_io.load_into_backbone(timm_model, weight_io.read_weights_file(weights), str(weights), backbone)
    if in_channels != 3:
        _adapt_first_conv(timm_model, in_channels)
    return Segmenter(net, arch, spec.name, num_classes, in_channels, spec.mean, spec.std, stride=32)


def _build_torchvision(arch: str, backbone: str, num_classes: int, in_channels: int, weights: str) -> Segmenter:
    from torchvision.models import MobileNet_V3_Large_Weights, segmentation

    if backbone not in _TV_BACKBONES:
        raise PixelforgeError(f"--arch {arch} is torchvision's model on MobileNetV3-Large; --model {backbone!r} does "
                              f"not apply (use --model mobilenet_v3_large, or --arch unet/fpn/deeplabv3plus for timm encoders)")
    backbone_weights = MobileNet_V3_Large_Weights.IMAGENET1K_V1 if weights == "imagenet" else None
    try:
        net = getattr(segmentation, TORCHVISION_ARCHS[arch])(weights=None, weights_backbone=backbone_weights,
                                                               num_classes=num_classes)
    except Exception as exc:  # noqa: BLE001 - URL download errors come in many types
        if backbone_weights is None:
            raise
        file_name = backbone_weights.url.rsplit("/", 1)[-1]
        raise PixelforgeError(
            f"could not download torchvision's MobileNetV3-Large ImageNet weights for --arch {arch} "
            f"({type(exc).__name__}); offline? put {file_name} in ~/.cache/torch/hub/checkpoints/ or pass --weights "
            f"PATH/{file_name}, or use --arch unet/fpn/deeplabv3plus (bundled Lite0 weights) or --weights none") from None
    if weights not in ("imagenet", "none"):
        state = weight_io.read_weights_file(weights)
        # A torchvision MobileNetV3 classifier state dict names the same layers "features.N..."; the segmentation
        # backbone keeps them as "N...".
        state = {k.removeprefix("features."): v for k, v in state.items()}
        weight_io.load_into_backbone(net.backbone, state, str(weights), "mobilenet_v3_large")
    if in_channels != 3:
        _adapt_first_conv(net.backbone, in_channels)
    return Segmenter(net, arch, "mobilenet_v3_large", num_classes, in_channels, _IMAGENET_MEAN, _IMAGENET_STD, stride=1)


def _adapt_first_conv(module: nn.Module, in_channels: int) -> None:
    """Make the first conv take `in_channels`, its weights adapted from the RGB ones (timm's rule: summed for 1
    channel, repeated and rescaled for more), so a grey image starts from the pretrained filters, not random ones.

    The conv is changed in place rather than replaced: timm's TF-ported models use `Conv2dSame`, whose padding
    happens at run time and must be kept.
    """
    from timm.models import adapt_input_conv

    conv = _first_conv(module)
    with torch.no_grad():
        conv.weight = nn.Parameter(adapt_input_conv(in_channels, conv.weight.detach().clone()))
    conv.in_channels = in_channels


def _first_conv(module: nn.Module) -> nn.Conv2d:
    for child in module.modules():
        if isinstance(child, nn.Conv2d):
            return child
    raise PixelforgeError(f"no convolution found in {type(module).__name__} to adapt to other input channels")
