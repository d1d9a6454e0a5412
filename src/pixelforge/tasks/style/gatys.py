"""Style transfer by optimisation (Gatys et al., "Image Style Transfer Using Convolutional Neural Networks", 2016).

The output image itself is optimised (L-BFGS by default, as in the paper; Adam as an option) to match the content
image's feature maps and the style image's Gram matrices on the loss network, with a total-variation prior.
Multi-scale: the image is optimised small first and upsampled as the start of the next scale (coarse to fine),
which gives large-scale structure cheaply and fewer high-frequency artefacts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from pixelforge.errors import PixelforgeError
from pixelforge.tasks.style.images import keep_content_colour, luminance, match_luminance
from pixelforge.tasks.style.lossnet import LossNetwork, content_loss, gram_matrix, style_loss, total_variation


@dataclass
class Weights:
    content: float = 1.0
    style: float = 10.0
    tv: float = 1e-2
    style_layers: tuple[float, ...] | None = None  # one per style layer (a weighted mean); None: all alike


@dataclass
class GatysResult:
    image: torch.Tensor  # [1, 3, H, W] in [0, 1]
    history: list[dict] = field(default_factory=list)  # one row per loss evaluation: step, scale, losses


def perceptual_losses(lossnet: LossNetwork, image: torch.Tensor, content_targets: dict, style_grams: dict,
                      weights: Weights) -> dict[str, torch.Tensor]:
    """{"content", "style", "tv", "total"} of `image` against precomputed targets (the same for every method)."""
    features = lossnet(image)
    losses = {"content": content_loss(features, content_targets, lossnet.content_layers),
              "style": style_loss(features, style_grams, lossnet.style_layers, weights.style_layers),
              "tv": total_variation(image)}
    losses["total"] = weights.content * losses["content"] + weights.style * losses["style"] + weights.tv * losses["tv"]
    return losses


@torch.no_grad()
def targets(lossnet: LossNetwork, content: torch.Tensor, style: torch.Tensor) -> tuple[dict, dict]:
    """(content feature maps, style Gram matrices) on the loss network."""
    content_features = lossnet(content)
    style_features = lossnet(style)
    return ({k: content_features[k] for k in lossnet.content_layers},
            {k: gram_matrix(style_features[k]) for k in lossnet.style_layers})


@torch.no_grad()
def measure(lossnet: LossNetwork, output: torch.Tensor, content: torch.Tensor, style: torch.Tensor,
            weights: Weights | None = None) -> dict[str, float]:
    """The losses of any stylized `output` (resized to the content's size): how every method is scored."""
    output = F.interpolate(output, size=content.shape[-2:], mode="bilinear", align_corners=False)
    content_targets, style_grams = targets(lossnet, content, style)
    losses = perceptual_losses(lossnet, output, content_targets, style_grams, weights or Weights())
    return {k: float(v) for k, v in losses.items()}


def stylize_by_optimisation(lossnet: LossNetwork, content: torch.Tensor, style: torch.Tensor, *, steps: int = 300,
                            weights: Weights | None = None, optimizer: str = "lbfgs", init: str = "content",
                            scales: int = 2, lr: float = 0.02, preserve_colour: bool = False, seed: int = 0,
                            progress: Callable[[int, dict], None] | None = None) -> GatysResult:
    """Optimise an image with `content`'s content and `style`'s style ([1, 3, H, W] in [0, 1]).

    `steps` loss evaluations in all, shared by the `scales` (each half the size of the next); `init` content or
    noise; `preserve_colour` transfers luminance only and keeps the content's colours.

    Example:
        >>> net = build_loss_network("lite0")  # doctest: +SKIP
        >>> stylize_by_optimisation(net, content, style, steps=50).image.shape  # doctest: +SKIP
        torch.Size([1, 3, 256, 256])
    """
    if optimizer not in ("lbfgs", "adam"):
        raise PixelforgeError(f"--optimizer {optimizer!r}: choose lbfgs or adam")
    if init not in ("content", "noise"):
        raise PixelforgeError(f"--init {init!r}: choose content or noise")
    weights = weights or Weights()
    full_content = content
    if preserve_colour:
        content, style = luminance(content), match_luminance(style, content)
    generator = torch.Generator().manual_seed(seed)
    sizes = scale_sizes(content.shape[-2:], scales)
    budget = [steps // len(sizes)] * len(sizes)
    budget[-1] += steps - sum(budget)
    image, history = None, []
    for scale, (size, scale_steps) in enumerate(zip(sizes, budget)):
        scaled_content = F.interpolate(content, size=size, mode="bilinear", align_corners=False, antialias=True)
        ratio = size[0] / content.shape[-2]
        style_size = [max(16, round(s * ratio)) for s in style.shape[-2:]]
        scaled_style = F.interpolate(style, size=style_size, mode="bilinear", align_corners=False, antialias=True)
        if image is None:
            image = (scaled_content.clone() if init == "content"
                     else torch.rand(scaled_content.shape, generator=generator))
        else:
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        image = _optimise_scale(lossnet, image, scaled_content, scaled_style, weights, optimizer, scale_steps, lr,
                                scale, history, progress)
    if image.shape[-2:] != content.shape[-2:]:  # a side under MIN_SIDE was optimised enlarged: back to the photo's
        image = F.interpolate(image, size=content.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    if preserve_colour:
        image = keep_content_colour(image, full_content)
    return GatysResult(image.detach(), history)


MIN_SIDE = 16  # the loss network's deepest style layer (stride 16) needs a pixel or more of feature map


def scale_sizes(size, scales: int) -> list[tuple[int, int]]:
    """(height, width) of each scale, coarse to fine: each half the next, the last the photo's own size.

    A scale whose shorter side would be under MIN_SIDE is enlarged as a whole, keeping the photo's aspect ratio
    (flooring each side on its own made a 32x4 panorama 32x16 and returned that shape); the result is resized
    back to the photo's size at the end, so every method returns the content's shape.
    """
    height, width = int(size[0]), int(size[1])
    sizes = []
    for k in reversed(range(scales)):
        if min(height, width) >> k >= MIN_SIDE:
            sizes.append((height >> k, width >> k))
        else:
            factor = MIN_SIDE / min(height, width)
            sizes.append((round(height * factor), round(width * factor)))
    return list(dict.fromkeys(sizes))  # a photo enlarged at every scale would optimise one size twice


class _BudgetSpent(Exception):
    """A scale's share of `--steps` loss evaluations is used up (raised inside L-BFGS's closure)."""


def _optimise_scale(lossnet, image, content, style, weights, optimizer, steps, lr, scale, history, progress):
    content_targets, style_grams = targets(lossnet, content, style)
    # Contiguous: L-BFGS flattens the gradient with .view(-1), and a 1x1 photo enlarged to 16 px came out of
    # F.interpolate with strides that .view refused (a RuntimeError traceback).
    image = image.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    if optimizer == "lbfgs":
        # One L-BFGS run of `steps` evaluations; the image is kept in [0, 1] inside the closure (as PyTorch's
        # neural-transfer tutorial does): L-BFGS has no bounds of its own.
        opt = torch.optim.LBFGS([image], lr=1.0, max_iter=steps, max_eval=steps, history_size=50,
                                tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    else:
        opt = torch.optim.Adam([image], lr=lr)

    start, best = len(history), {"total": float("inf"), "image": None}

    def closure():
        if len(history) - start >= steps:  # L-BFGS's line search evaluates past max_eval: stop at the share
            raise _BudgetSpent
        with torch.no_grad():
            image.clamp_(0, 1)
        opt.zero_grad()
        losses = perceptual_losses(lossnet, image, content_targets, style_grams, weights)
        losses["total"].backward()
        row = {"step": len(history) + 1, "scale": scale, **{k: float(v.detach()) for k, v in losses.items()}}
        history.append(row)
        if row["total"] < best["total"]:
            best.update(total=row["total"], image=image.detach().clone())
        if progress is not None:
            progress(1, row)
        return losses["total"]

    if optimizer == "lbfgs":
        try:
            while len(history) - start < steps:  # L-BFGS may stop early when it converges; a new run picks up again
                before = len(history)
                opt.step(closure)
                if len(history) == before:
                    break
                opt.param_groups[0]["max_iter"] = opt.param_groups[0]["max_eval"] = steps - (len(history) - start)
                if opt.param_groups[0]["max_iter"] <= 0:
                    break
        except _BudgetSpent:  # stopped inside a line search: the image is a trial point; keep the best one seen
            image = best["image"].requires_grad_(False)
    else:
        for _ in range(steps):
            opt.step(closure)
    with torch.no_grad():
        image.clamp_(0, 1)
    return image.detach()
