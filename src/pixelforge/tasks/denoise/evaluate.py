"""Scoring and running a trained denoising run: whole images, ours beside the classical denoisers, and predict.

`evaluate` adds the run's noise to each clean image (seeded by the run's seed and the file's name, so every
evaluation of every run sees the same noisy images; paired data uses its own noisy/ images), rounds the noisy image
to the image's bit depth, and scores the noisy input, scikit-image's non-local means and wavelet denoisers
(baselines.py) and the run's model, all on the full-resolution image with the same metrics (metrics.py). The
model is fully convolutional: images are padded by reflection to the multiple the network needs (32 for the U-Net)
and cropped back, exactly as the exported package does (deploy/runtime/denoise.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pixelforge.data.noise import parse_noise, quantize, rng_for, to_unit
from pixelforge.deploy.runtime.denoise import grey_model_on_colour, model_input, model_output
from pixelforge.errors import PixelforgeError
from pixelforge.engine.devices import model_device, on_inference_device
from pixelforge.runs import folder as rd
from pixelforge.runs.result import EvalResult
from pixelforge.tasks.denoise.baselines import BASELINES, run_baseline
from pixelforge.metrics.image_quality import image_scores, mean_scores

log = logging.getLogger("pixelforge")
GALLERY_IMAGES = 4
CROP = 160


@dataclass
class DenoiseRun:
    run_dir: Path
    config: object
    model: torch.nn.Module
    channels: int
    noise: str
    paired: bool

    @property
    def multiple(self) -> int:
        return self.model.multiple


def load_denoise_run(run_dir: str | Path, checkpoint: str = "best.ckpt") -> DenoiseRun:
    """Rebuild the run's denoiser from its config (no pretrained weights needed) and load its checkpoint."""
    from pixelforge.tasks.common.run import read_run
    from pixelforge.tasks.denoise.models import build_denoiser

    run, cfg, _, state = read_run(run_dir, "denoise", checkpoint)
    model = build_denoiser(state["denoiser"], state["channels"], depth=state["depth"], features=state["features"],
                           shuffle=state.get("shuffle", 1),
                           encoder=state["encoder"], weights="none")
    model.load_state_dict(state["model"])
    return DenoiseRun(run, cfg, model.eval(), state["channels"], state["noise"], state["paired"])


@torch.inference_mode()
def denoise_array(run: DenoiseRun, image: np.ndarray) -> np.ndarray:
    """An HxWxC uint8/uint16 image denoised: same size, channels and bit depth."""
    if grey_model_on_colour(run.channels, image):
        return np.concatenate([denoise_array(run, image[..., c:c + 1]) for c in range(3)], axis=-1)
    x = torch.from_numpy(model_input(image, run.channels, run.multiple)).to(model_device(run.model))
    return model_output(run.model(x).cpu().numpy(), image)


def select_items(run: DenoiseRun, data: str | None, split: str | None):
    from pixelforge.runs.files import held_out_split
    from pixelforge.tasks.denoise.data import read_denoise_data, split_source

    if data is None:
        cfg = run.config
        source = split_source(read_denoise_data(cfg.data), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    else:
        source = read_denoise_data(data)
    name = held_out_split(source, split, own_data=data is None)
    items = source.items if name == "all" else source.split(name)
    if not items:
        raise PixelforgeError(f"{data or run.config.data}: no images in split {name!r}")
    return items, name


def noisy_version(run: DenoiseRun, item, clean: np.ndarray, noisy: np.ndarray | None) -> np.ndarray:
    """The noisy input for an item: its paired noisy image, or the run's noise, seeded by the file's name."""
    if noisy is not None:
        return noisy
    return quantize(parse_noise(run.noise).apply(to_unit(clean), rng_for(run.config.seed, item.clean.name)), clean.dtype)


def evaluate_denoising(run_dir: str | Path, data: str | None = None, split: str | None = None,
                       out: str | Path | None = None, baselines: bool = True, limit: int | None = None,
                       include_train: bool = False) -> EvalResult:
    """Score the run's best checkpoint beside the classical denoisers on whole images; writes metrics.json and
    examples.png (noisy / classical / ours / clean crops with their PSNR) to `out` (default RUN/eval-<split>).
    With `data`, the run's own training images (its clean ones) are left out (counted in
    `excluded_training_images`) unless `include_train`.

    Example:
        >>> evaluate_denoising("runs/denoise").metrics["psnr"]  # doctest: +SKIP
        30.1
    """
    from pixelforge.data.images import ImageReadError
    from pixelforge.tasks.common.held_out import leave_out_training_images
    from pixelforge.tasks.denoise.data import load_pair
    from pixelforge.tasks.denoise.task import prepare_data

    run = load_denoise_run(run_dir)
    items, name = select_items(run, data, split)
    items, excluded = leave_out_training_images(items, lambda i: i.clean, lambda: [
        i.clean for i in prepare_data(run.config)[0].split("train")], data, name, include_train)
    items = items[:limit] if limit else items
    methods = ("noisy", *(BASELINES if baselines else ()), "ours")
    rows = {m: [] for m in methods}
    seconds = {m: 0.0 for m in methods}
    unreadable, gallery, per_image = [], [], []
    with on_inference_device(run.model):
        for item in items:
            try:
                clean, paired_noisy = load_pair(item, run.channels)
            except ImageReadError as exc:
                log.warning("skipping unreadable image: %s", exc)  # as classification's evaluate says it
                unreadable.append(str(exc))
                continue
            outputs = {"noisy": noisy_version(run, item, clean, paired_noisy)}
            for method in methods[1:]:
                started = time.perf_counter()
                outputs[method] = (denoise_array(run, outputs["noisy"]) if method == "ours"
                                   else run_baseline(method, outputs["noisy"]))
                seconds[method] += time.perf_counter() - started
            scores = {m: image_scores(outputs[m], clean) for m in methods}
            for m in methods:
                rows[m].append(scores[m])
            per_image.append({"image": str(item.clean), **{f"psnr_{m}": round(scores[m]["psnr"], 3) for m in methods}})
            if len(gallery) < GALLERY_IMAGES:
                gallery.append((item.clean.name, clean, outputs, scores))
    if not rows["ours"]:
        raise PixelforgeError(f"{data or run.config.data}: no readable images to evaluate")
    ours, noisy = mean_scores(rows["ours"]), mean_scores(rows["noisy"])
    metrics = {**ours, "psnr_noisy": noisy["psnr"], "ssim_noisy": noisy["ssim"], "ms_ssim_noisy": noisy["ms_ssim"],
               "baselines": {m: {**mean_scores(rows[m]), "seconds_per_image": seconds[m] / len(rows[m])}
                             for m in methods[1:-1]},
               "seconds_per_image": seconds["ours"] / len(rows["ours"]), "noise": run.noise if not run.paired else "paired",
               "split": name, "num_images": len(rows["ours"]), "excluded_training_images": excluded,
               "per_image": per_image}
    request = {"data": rd.data_key(data), "split": name, "baselines": baselines, "limit": limit,
               **({"include_train": True} if include_train else {})}
    out_dir = rd.evaluation_dir(out, run.run_dir / f"eval-{name}", request)
    from pixelforge.tasks.denoise.figures import plot_examples

    figures = {"examples": plot_examples(gallery, methods, out_dir / "examples.png", CROP)}
    rd.write_json(out_dir / "metrics.json", metrics)
    return EvalResult(metrics, out_dir, figures, unreadable)


def predict_denoising(run_dir: str | Path, paths: list, out: str | Path | None) -> list[dict]:
    """Denoise image files with the run (PyTorch): OUT/STEM.png each, same size and bit depth."""
    from pixelforge.data.sources import collect_paths
    from pixelforge.deploy.runtime.denoise import denoise_files

    run = load_denoise_run(run_dir)
    files = collect_paths(list(paths))
    if not files:
        raise PixelforgeError(f"no images found in {', '.join(map(str, paths))}")
    return denoise_files(files, Path(out or run.run_dir / "predictions"), lambda image: denoise_array(run, image))
