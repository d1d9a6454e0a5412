"""One entry point for every explanation method: `heatmaps(model, x, targets, method)`.

    gradcam, gradcam++, scorecam, eigencam      pytorch-grad-cam, on the automatically found target layer
    saliency, integrated-gradients              captum, on input pixels

Importing this module does not import torch (the CLI lists `METHODS` without paying for it).
"""

from __future__ import annotations

CAM_METHODS = ("gradcam", "gradcam++", "scorecam", "eigencam")
ATTRIBUTION_METHODS = ("saliency", "integrated-gradients")
METHODS = CAM_METHODS + ATTRIBUTION_METHODS


def check_method(method: str) -> str:
    from pixelforge.errors import PixelforgeError

    if method not in METHODS:
        raise PixelforgeError(f"--method {method!r} is not a method; choose one of {', '.join(METHODS)}")
    return method


def allow_autograd(model):
    """Replace parameters and buffers created under `torch.inference_mode()` (e.g. by a channels_last conversion
    during batch inference) with ordinary copies: autograd refuses to save inference tensors for backward."""
    import torch

    with torch.no_grad():
        for module in model.modules():
            for name, param in module._parameters.items():
                if param is not None and param.is_inference():
                    module._parameters[name] = torch.nn.Parameter(param.clone(), requires_grad=param.requires_grad)
            for name, buffer in module._buffers.items():
                if buffer is not None and buffer.is_inference():
                    module._buffers[name] = buffer.clone()
    return model


def heatmaps(model, x, targets: list[int], method: str = "gradcam"):
    """Heat maps (N, H, W) as float32 numpy in [0, 1]: how much each pixel supports class `targets[i]`.

    Example:
        >>> import torch
        >>> from pixelforge.models.classifier import build_classifier
        >>> model = build_classifier("simple_cnn", 3, weights="none")
        >>> heatmaps(model, torch.randn(2, 3, 32, 32), [0, 2], "gradcam").shape
        (2, 32, 32)
    """
    check_method(method)
    allow_autograd(model)
    if method in CAM_METHODS:
        from pixelforge.explain.cam import cam_heatmaps

        return cam_heatmaps(model, x, targets, method)
    from pixelforge.explain.attribution import attribution_heatmaps

    return attribution_heatmaps(model, x, targets, method)
