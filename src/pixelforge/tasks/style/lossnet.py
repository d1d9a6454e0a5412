"""The loss network of neural style transfer: a frozen ImageNet CNN whose feature maps define content and style.

Gatys et al., "Image Style Transfer Using Convolutional Neural Networks" (CVPR 2016): the content loss compares
feature maps, the style loss compares their Gram matrices (channel correlations), both on named layers of a
pretrained network. Johnson et al. (ECCV 2016) train a feed-forward network with the same "perceptual" loss.

The papers use VGG-19, whose ImageNet weights cannot be installed here; the default is the bundled ImageNet
EfficientNet-Lite0 (`tf_efficientnet_lite0`, or Lite1/Lite2), and `vgg19` loads torchvision's VGG-19 from a file
the user has. Layers are module names of the network (forward hooks, so any named module can be used); VGG also
takes the usual aliases (`relu4_2`).

Each layer's loss is divided by the mean square of its target (feature map or Gram matrix), so layers of very
different magnitudes (Lite0's early and late blocks differ by orders of magnitude) count alike and the content and
style weights keep their meaning across networks.

`feature_transform="softmax"` is SWAG (Wang, Li & Vasconcelos, "Rethinking and Improving the Robustness of Image
Style Transfer", CVPR 2021): networks with residual connections (ResNets, Lite0's inverted residuals) give peaky,
low-entropy feature maps, and the paper finds that a softmax over each layer's activations before the Gram
matrices and the content comparison makes their style losses behave like VGG's. See `softmax_features` for the
exact form. With Lite0 and our stained glass it gave paler pictures and a wider fast/optimisation gap, so it is
off by default (docs/style-transfer.md, round eight).
"""

from __future__ import annotations

import torch
from torch import nn

from pixelforge.errors import PixelforgeError

# Defaults picked by the comparison in docs/style-transfer.md (benchmarks/style_layers.py): post-activation
# expansion layers (Lite0's "relu"-like maps) of four scales for style; one mid-level one for content.
LITE_STYLE_LAYERS = ("blocks.0.0.bn1", "blocks.1.0.bn1", "blocks.2.0.bn1", "blocks.3.0.bn1", "blocks.4.0.bn1")
LITE_CONTENT_LAYERS = ("blocks.3.0.bn1",)
VGG_ALIASES = {"relu1_1": "features.1", "relu2_1": "features.6", "relu3_1": "features.11", "relu4_1": "features.20",
               "relu4_2": "features.22", "relu5_1": "features.29"}
VGG_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
VGG_CONTENT_LAYERS = ("relu4_2",)
LOSS_NETS = ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2", "vgg19")
NET_ALIASES = {"lite0": "tf_efficientnet_lite0", "lite1": "tf_efficientnet_lite1", "lite2": "tf_efficientnet_lite2"}
FEATURE_TRANSFORMS = ("none", "softmax", "softmax-deep")


class _Stop(Exception):
    """Raised by the deepest hook: layers after it are never computed."""


class LossNetwork(nn.Module):
    """A frozen CNN returning {layer name: feature map} for images in [0, 1]."""

    def __init__(self, name: str, net: nn.Module, mean, std, content_layers, style_layers,
                 feature_transform: str = "none"):
        super().__init__()
        if feature_transform not in FEATURE_TRANSFORMS:
            raise PixelforgeError(f"--feature-transform {feature_transform!r}: choose {', '.join(FEATURE_TRANSFORMS)}")
        self.name, self.net = name, net.eval().requires_grad_(False)
        self.feature_transform = feature_transform
        self.content_layers, self.style_layers = tuple(content_layers), tuple(style_layers)
        # "softmax-deep" smooths only the two deepest style layers (also where they serve as content layers): the
        # SWAG authors' code notes the best results sometimes come from smoothing only the deeper, peakier layers.
        smoothed = {"none": (), "softmax": (*self.content_layers, *self.style_layers),
                    "softmax-deep": self.style_layers[-2:]}[feature_transform]
        self.smoothed_layers = frozenset(smoothed)
        self.register_buffer("_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        modules = dict(self.net.named_modules())
        self.layer_names = {}  # the user's layer name -> module name (VGG aliases)
        for layer in (*self.content_layers, *self.style_layers):
            module = VGG_ALIASES.get(layer, layer) if name == "vgg19" else layer
            if module not in modules:
                close = [n for n in modules if n.startswith(module.rsplit(".", 1)[0])][:5]
                raise PixelforgeError(f"loss network {name}: no layer {layer!r}"
                                      + (f"; layers there include {', '.join(close)}" if close else ""))
            self.layer_names[layer] = module
        self._order = [n for n, _ in self.net.named_modules() if n in set(self.layer_names.values())]

    def train(self, mode: bool = True):  # always frozen: batch-norm statistics stay ImageNet's
        return super().train(False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        found: dict[str, torch.Tensor] = {}
        last = self._order[-1]
        modules = dict(self.net.named_modules())
        handles = []

        def hook(module_name):
            def keep(_module, _inputs, output):
                found[module_name] = output
                if module_name == last:
                    raise _Stop
            return keep

        for module_name in set(self.layer_names.values()):
            handles.append(modules[module_name].register_forward_hook(hook(module_name)))
        try:
            self.net((images - self._mean) / self._std)
        except _Stop:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return {layer: softmax_features(found[module]) if layer in self.smoothed_layers else found[module]
                for layer, module in self.layer_names.items()}


def softmax_features(features: torch.Tensor) -> torch.Tensor:
    """SWAG's activation smoothing: each image's softmax over all of a layer's C*H*W activations, times C*H*W.

    SWAG's authors' code (`softmax3d`) takes the softmax over the whole feature map of a layer (every channel and
    position together, temperature 1). Multiplying by the number of activations, i.e. exp(x) / mean(exp(x)),
    keeps the values' mean at 1 whatever the image size: the paper compares images of one size, but here a
    512 px style image's Gram matrices are the targets of 256 px training crops and of 340x512 photos, and a plain
    softmax (values summing to 1) would scale their Gram matrices by the ratio of the sizes squared.

    Example:
        >>> smoothed = softmax_features(torch.randn(2, 4, 8, 8))
        >>> [round(float(m), 4) for m in smoothed.mean(dim=(1, 2, 3))]
        [1.0, 1.0]
    """
    flat = features.flatten(1)
    return (torch.softmax(flat, dim=1) * flat.shape[1]).view_as(features)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, C] channel correlations, divided by C*H*W (Gatys et al.; Johnson et al.'s scaling)."""
    b, c, h, w = features.shape
    # In fp32 even under bf16 autocast: a sum over every position of products, which bf16's 8-bit mantissa would
    # round away (the style loss compares these matrices to 1e-3 and below).
    with torch.autocast(features.device.type, enabled=False):
        flat = features.float().reshape(b, c, h * w)
        return flat @ flat.transpose(1, 2) / (c * h * w)


def relative_mse(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean square error divided by the target's mean square: a layer's loss independent of its scale."""
    return ((value - target) ** 2).mean() / (target.detach() ** 2).mean().clamp_min(1e-12)


def content_loss(features: dict, targets: dict, layers) -> torch.Tensor:
    """Mean over `layers` of relative_mse(feature map, target feature map)."""
    return sum(relative_mse(features[layer], targets[layer]) for layer in layers) / len(layers)


def style_loss(features: dict, target_grams: dict, layers, layer_weights=None) -> torch.Tensor:
    """Mean over `layers` of relative_mse(Gram, target Gram); a target Gram of batch 1 applies to every image.

    `layer_weights` (one per layer) makes it a weighted mean; None counts every layer alike.
    """
    layer_weights = list(layer_weights) if layer_weights is not None else [1.0] * len(layers)
    if len(layer_weights) != len(layers):
        raise PixelforgeError(f"--style-layer-weights: {len(layer_weights)} weights for {len(layers)} style layers "
                              f"({', '.join(layers)}); give one per layer")
    total = 0.0
    for layer, weight in zip(layers, layer_weights):
        gram = gram_matrix(features[layer])
        total = total + weight * relative_mse(gram, target_grams[layer].expand_as(gram))
    return total / sum(layer_weights)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (the smoothness prior of both papers)."""
    return ((images[..., 1:, :] - images[..., :-1, :]).abs().mean()
            + (images[..., :, 1:] - images[..., :, :-1]).abs().mean())


def build_loss_network(name: str = "tf_efficientnet_lite0", weights: str | None = None,
                       content_layers=None, style_layers=None, feature_transform: str = "none") -> LossNetwork:
    """The frozen loss network `name` (lite0/1/2 with bundled ImageNet weights, or vgg19 from `weights`).

    `feature_transform` "softmax" smooths every returned feature map (SWAG, `softmax_features`), "softmax-deep" only
    the two deepest style layers' maps; "none" keeps them.

    Example:
        >>> net = build_loss_network("lite0")
        >>> sorted(net(torch.rand(1, 3, 64, 64)))[:1]
        ['blocks.0.0.bn1']
    """
    name = NET_ALIASES.get(name, name)
    if name not in LOSS_NETS:
        raise PixelforgeError(f"--loss-net {name!r}: choose {', '.join(LOSS_NETS)} (or lite0, lite1, lite2)")
    if name == "vgg19":
        net = _vgg19(weights)
        content, style = VGG_CONTENT_LAYERS, VGG_STYLE_LAYERS
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    else:
        import timm

        from pixelforge.models import weights as weight_io

        net = timm.create_model(name, pretrained=False)
        if weights:
            weight_io.load_into_backbone(net, weight_io.read_weights_file(weights), str(weights), name)
        else:
            net.load_state_dict(weight_io.bundled_imagenet_state_dict(net, name))
        content, style = LITE_CONTENT_LAYERS, LITE_STYLE_LAYERS
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    return LossNetwork(name, net, mean, std, tuple(content_layers or content), tuple(style_layers or style),
                       feature_transform)


def _vgg19(weights: str | None) -> nn.Module:
    import torchvision

    from pixelforge.models import weights as weight_io

    if not weights:
        raise PixelforgeError("--loss-net vgg19 needs --weights PATH: torchvision's vgg19 ImageNet state dict "
                              "(vgg19-dcbb9e9d.pth); it cannot be downloaded here")
    net = torchvision.models.vgg19(weights=None)
    state = weight_io.read_weights_file(weights)
    # The classifier is never run; a file with only `features.*` (a trimmed download) is fine too.
    weight_io.load_into_backbone(net.features, {k[len("features."):]: v for k, v in state.items()
                                                if k.startswith("features.")}, str(weights), "vgg19")
    for module in net.features:  # in-place ReLUs would overwrite the hooked feature maps
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return net
