"""Class activation maps (Grad-CAM written out, the others from pytorch-grad-cam), with the target layer found
automatically for any backbone.

Methods: Grad-CAM (Selvaraju et al. 2017), Grad-CAM++ (Chattopadhyay et al. 2018), Score-CAM (Wang et al. 2020)
and Eigen-CAM (Muhammad & Yeasin 2020). All of them weight the feature maps of one convolutional layer; the
usual choice is the last layer that still has a spatial grid, just before global pooling. `find_target_layer`
finds it by running the model once and watching every module's output shape, so timm, torchvision and
pixelforge backbones all work without a per-model table: at 224 px it picks `bn2` for EfficientNets, `layer4` for
ResNets, `stages` for ConvNeXt and simple_cnn, `blocks`/`features` for MobileNetV3, `Mixed_7c` for Inception-v3;
on small inputs, the last stage whose map is still at least 4x4 (e.g. `blocks.4` of EfficientNet-Lite0 at 64 px).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# Modules that never own a feature map worth explaining: they pass their input on unchanged, or resample it.
_SKIPPED = (nn.Identity, nn.Dropout, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def find_target_layer(model: nn.Module, img_size: int = 224, min_grid: int = 4) -> tuple[str, nn.Module]:
    """The last module, in execution order, whose output is a feature map of at least `min_grid` x `min_grid` at
    `img_size` (else the last one larger than 1x1).

    Global pooling, squeeze-excitation gates and heads produce 1x1 or flat outputs, so what remains is the final
    spatial feature map. Probing at the real input size matters: at 64 px an EfficientNet's last map is 2x2, whose
    heat map is one smooth blob that scored worse than random on deletion, so an earlier 4x4 stage explains instead.

    Example:
        >>> from pixelforge.models.classifier import build_classifier
        >>> find_target_layer(build_classifier("simple_cnn", 2, weights="none"), 32)[0]
        'backbone.stages'
    """
    seen: list[tuple[str, int]] = []  # (module name, smaller side of its feature map)

    def record(name):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[2] * output.shape[3] > 1:
                seen.append((name, min(output.shape[2], output.shape[3])))
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in model.named_modules()
               if name and not isinstance(module, _SKIPPED)]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, 3, img_size, img_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if not seen:
        raise ValueError(f"{type(model).__name__} has no layer with a spatial feature map at {img_size} px")
    # Stages and blocks, not a norm layer in the middle of a block: at most two levels below the backbone.
    shallow = [(name, side) for name, side in seen if len(name.removeprefix("backbone.").split(".")) <= 2] or seen
    fine = [name for name, side in shallow if side >= min_grid]
    name = fine[-1] if fine else shallow[-1][0]
    return name, model.get_submodule(name)


@contextmanager
def _quiet_progress():
    """Silence the tqdm bar Score-CAM draws per image (the CLI has its own output)."""
    from types import SimpleNamespace

    from pytorch_grad_cam import score_cam

    before = score_cam.tqdm
    score_cam.tqdm = SimpleNamespace(tqdm=lambda iterable, *args, **kwargs: iterable)
    try:
        yield
    finally:
        score_cam.tqdm = before


def grad_cam(model: nn.Module, x: torch.Tensor, targets: list[int], layer: nn.Module) -> np.ndarray:
    """Grad-CAM as pytorch-grad-cam's `GradCAM` computes it (tests/explain check equality): the layer's feature maps
    weighted by their spatially averaged gradients of the target logits, ReLU, each map scaled to [0, 1], resized
    bilinearly to the input, scaled again.

    Written out here because importing pytorch_grad_cam imports all of its methods and, with them, scikit-learn,
    pandas, OpenCV and SciPy: about a second of every training run, whose report shows a Grad-CAM gallery (issue 20,
    lever L16). The other methods still come from the library.
    """
    saved: dict[str, torch.Tensor] = {}

    def keep(module, inputs, output):
        saved["activations"] = output
        output.register_hook(lambda grad: saved.__setitem__("gradients", grad))

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(x.detach().clone().requires_grad_(True))  # a graph even when every parameter is frozen
            model.zero_grad()
            logits[torch.arange(len(targets)), torch.as_tensor(targets)].sum().backward()
    finally:
        handle.remove()
    activations, gradients = saved["activations"].detach().float(), saved["gradients"].float()
    return weighted_maps(activations, gradients.mean((2, 3)), x.shape[-2:])


def linear_head_cam(feature_maps: torch.Tensor, head_weight: torch.Tensor, targets: list[int],
                    size: tuple[int, int]) -> np.ndarray:
    """Grad-CAM of a model whose logits are `head_weight @ mean(feature_maps over space) + bias`, without autograd.

    For global average pooling and one linear layer, the gradient of logit t with respect to every position of
    channel c is head_weight[t, c] / (h w), so its spatial mean, Grad-CAM's channel weight, is that same number:
    Grad-CAM at the pooled map is CAM (Zhou et al. 2016) exactly. The report draws its gallery this way from ONNX
    Runtime's map (tasks/classify/features.py), with no eager backbone (issue 20, lever L22).

    Example:
        >>> maps = torch.rand(2, 8, 4, 4)
        >>> linear_head_cam(maps, torch.randn(3, 8), [0, 2], (32, 32)).shape
        (2, 32, 32)
    """
    feature_maps = feature_maps.float()
    h, w = feature_maps.shape[-2:]
    weights = head_weight.detach().float()[torch.as_tensor(targets)] / (h * w)
    return weighted_maps(feature_maps, weights, size)


def weighted_maps(activations: torch.Tensor, channel_weights: torch.Tensor, size) -> np.ndarray:
    """Σ_c weight_c · activation_c, ReLU, each map scaled to [0, 1], resized bilinearly to `size`, scaled again:
    the step every CAM shares once it has its [N, C] channel weights."""
    cams = (channel_weights[:, :, None, None] * activations).sum(1, keepdim=True).clamp_min(0)
    cams = F.interpolate(_scaled(cams), size=tuple(size), mode="bilinear", align_corners=False)  # = cv2.resize
    return np.nan_to_num(_scaled(cams.clamp_min(0))[:, 0].cpu().numpy().astype(np.float32))


def _scaled(maps: torch.Tensor) -> torch.Tensor:
    """Each map shifted to a minimum of 0 and divided by (1e-7 + its maximum), as pytorch-grad-cam does."""
    low = maps.amin((1, 2, 3), keepdim=True)
    maps = maps - low
    return maps / (1e-7 + maps.amax((1, 2, 3), keepdim=True))


def cam_heatmaps(model: nn.Module, x: torch.Tensor, targets: list[int], method: str = "gradcam",
                 layer: nn.Module | None = None) -> np.ndarray:
    """Heat maps (N, H, W) in [0, 1] for the classes `targets` of the batch `x` (normalized model input)."""
    if layer is None:
        layer = find_target_layer(model, x.shape[-1])[1]
    if method == "gradcam":
        return grad_cam(model, x, targets, layer)
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    kinds = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM, "eigencam": EigenCAM}
    cam = kinds[method](model=model, target_layers=[layer])
    cam.batch_size = 64  # Score-CAM: masked copies per forward pass
    try:
        # The input requires grad so the graph exists even when every parameter is frozen.
        with torch.enable_grad(), _quiet_progress():
            maps = cam(input_tensor=x.detach().clone().requires_grad_(True),
                       targets=[ClassifierOutputTarget(int(t)) for t in targets])
    finally:
        cam.activations_and_grads.release()
    return np.nan_to_num(np.asarray(maps, dtype=np.float32))
