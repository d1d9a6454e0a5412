"""The three ways to stylize a photo, behind one function each, all scored by the same loss network.

    gatys      optimise the image itself (gatys.py): slow, the reference quality
    fast       one forward pass of a trained transformer: a run folder (PyTorch) or a style package (ONNX Runtime)
    arbitrary  Magenta's networks (deploy/runtime/arbitrary.py): any style image, or one of 26 built-in styles

`seconds` is the stylization alone (loss network and model loading excluded, for every method alike); the losses
are `gatys.measure` of the output at the content's size: content and style loss on the loss network's layers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pixelforge.errors import PixelforgeError
from pixelforge.tasks.style.gatys import Weights, measure, stylize_by_optimisation
from pixelforge.tasks.style.images import read_image, to_pil, to_tensor
from pixelforge.tasks.style.lossnet import LossNetwork


@dataclass
class Stylized:
    image: torch.Tensor  # [1, 3, H, W] in [0, 1]
    seconds: float
    method: str
    history: list = field(default_factory=list)  # gatys: the loss curve
    losses: dict = field(default_factory=dict)  # filled by `score`


def score(result: Stylized, lossnet: LossNetwork, content: torch.Tensor, style: torch.Tensor | None,
          weights: Weights) -> Stylized:
    """Fill `result.losses` (style loss None when the style image is unknown, e.g. a built-in style)."""
    if style is None:
        out = measure(lossnet, result.image, content, content, weights)  # content loss only
        out["style"] = out["total"] = None
    else:
        out = measure(lossnet, result.image, content, style, weights)
    result.losses = out
    return result


def gatys(lossnet: LossNetwork, content: torch.Tensor, style: torch.Tensor, progress=None, **options) -> Stylized:
    started = time.perf_counter()
    result = stylize_by_optimisation(lossnet, content, style, progress=progress, **options)
    return Stylized(result.image, time.perf_counter() - started, "gatys", result.history)


def fast(model_path: str | Path, content: torch.Tensor) -> tuple[Stylized, Path | None]:
    """Stylize with a style run (PyTorch) or package (ONNX Runtime); also returns the style image it learnt, if known."""
    from pixelforge.deploy.runtime.package import is_package

    path = Path(model_path)
    if is_package(path):
        from pixelforge.deploy.runtime.registry import load_runtime
        from pixelforge.deploy.runtime.style import StyleRuntime

        runtime = load_runtime(path)
        if not isinstance(runtime, StyleRuntime):
            raise PixelforgeError(f"{path}: a {runtime.task!r} package, not a style package (export a --task style run)")
        array = (content[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        runtime.predict_images([array[:8, :8]])  # the first call of an ONNX session allocates: not the model's time
        started = time.perf_counter()
        out = runtime.predict_images([array])[0]["image"]
        seconds = time.perf_counter() - started
        style = path / "style.png"
        return Stylized(to_tensor(out), seconds, "fast (ONNX Runtime)"), style if style.is_file() else None
    from pixelforge.tasks.style.apply import load_style_run, style_image_of, stylize_tensor

    run = load_style_run(path)
    started = time.perf_counter()
    image = stylize_tensor(run.model, content)
    return Stylized(image, time.perf_counter() - started, "fast (PyTorch)"), style_image_of(run)


def trained_feature_transform(model_path: str | Path) -> str:
    """The loss network's feature transform a style run or package was trained with ("none" before the option).

    `stylize RUN` measures with it by default, so a network trained on SWAG's losses is scored on them.
    """
    from pixelforge.deploy.runtime.package import is_package, read_json_file

    path = Path(model_path)
    if is_package(path):
        return read_json_file(path / "package.json").get("feature_transform", "none")
    from pixelforge.tasks.config import load_config

    return getattr(load_config(path / "config.yaml"), "feature_transform", "none")


def arbitrary(content: torch.Tensor, style: torch.Tensor | str) -> Stylized:
    """`style`: an image tensor, or a built-in style spec (`7`, `3:0.5,12:0.5`)."""
    from pixelforge.deploy.runtime.arbitrary import ArbitraryStylizer

    stylizer = ArbitraryStylizer()
    as_array = lambda t: np.asarray(to_pil(t))  # noqa: E731
    style_input = style if isinstance(style, str) else as_array(style)
    stylizer.stylize(as_array(content)[:64, :64], style_input)  # loads the sessions: not the model's time
    started = time.perf_counter()
    out = stylizer.stylize(as_array(content), style_input)
    return Stylized(to_tensor(out), time.perf_counter() - started, "arbitrary (Magenta, ONNX Runtime)")


def read_style(path_or_name: str, long_side: int | None, builtin_ok: bool = False) -> torch.Tensor | str:
    """A style image file as a tensor, or a built-in style spec string (arbitrary only: `builtin_ok`)."""
    from pixelforge.deploy.runtime.arbitrary import BUILTIN_STYLES, builtin_weights

    if not Path(path_or_name).exists():
        if builtin_weights(path_or_name) is not None:
            return path_or_name
        if builtin_ok:  # "zebra: image not found" did not say that built-in styles are numbers
            raise PixelforgeError(f"{path_or_name}: neither an image file nor a built-in style; built-in styles are "
                                  f"numbers 0-{BUILTIN_STYLES - 1} or a blend such as 3:0.5,12:0.5")
    return read_image(path_or_name, long_side)
