"""Scoring and running a trained segmentation run: evaluate on a split, score two mask folders, predict masks.

Predictions are scored at each ground-truth mask's full resolution: the image is resized so its shorter side is the
run's `img_size` (the scale the model trained at), the logits are upsampled bilinearly to the mask's size, and only
then is the class picked per pixel. Scoring at the training crop size would hide boundary errors, and scores would
change with `img_size`. Scores and their conventions: `metrics/segmentation.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from pixelforge.engine.devices import model_device, on_inference_device
from pixelforge.runs import folder as rd
from pixelforge.errors import PixelforgeError
from pixelforge.runs.result import EvalResult
from pixelforge.metrics.segmentation import ConfusionMatrix
from pixelforge.deploy.runtime.mask_files import to_display
from pixelforge.viz.segmentation import plot_pixel_confusion, plot_triplets

GALLERY_IMAGES = 6


@dataclass
class SegmentationRun:
    """A trained run rebuilt for inference: model, classes and the exact input preprocessing of training."""

    run_dir: Path
    config: object  # the run config (RunConfig subclass)
    classes: list[str]
    model: torch.nn.Module
    mean: list[float]
    std: list[float]
    in_channels: int
    ignore_index: int
    bit_depth: int = 8  # of the training images: an 8-bit image is refused by a 16-bit model (mask_files.py)

    @property
    def img_size(self) -> int:
        return self.config.img_size


def load_segmentation_run(run_dir: str | Path, checkpoint: str = "best.ckpt") -> SegmentationRun:
    """Rebuild the run's segmenter from config.yaml (weights none) and load its checkpoint; no network needed."""
    from pixelforge.tasks.common.run import read_run
    from pixelforge.models.segmenters import build_segmenter
    from pixelforge.tasks.segment.task import DEFAULT_ARCH

    run, cfg, classes, state = read_run(run_dir, "segment", checkpoint)
    model = build_segmenter(state.get("arch", cfg.arch or DEFAULT_ARCH), cfg.model, len(classes),
                            state["in_channels"], weights="none")
    model.load_state_dict(state["model"])
    return SegmentationRun(run, cfg, classes, model.eval(), list(state["mean"]), list(state["std"]),
                           state["in_channels"], state.get("ignore_index", cfg.ignore_index),
                           int(state.get("bit_depth", 8)))


def model_input(run: SegmentationRun, image: np.ndarray) -> torch.Tensor:
    """An HxWxC uint8/uint16 image as the normalised [1, C, h, w] tensor the model saw in training: the shorter side
    resized to img_size as the data pipeline decodes it (`data.masks.dataset.decode_pair`), values scaled to [0, 1]
    by bit depth, then the run's mean/std."""
    from torchvision.transforms.v2 import functional as TF

    from pixelforge.data.masks.images import match_channels

    array = match_channels(image, run.in_channels)
    x = torch.from_numpy(array.transpose(2, 0, 1).copy())  # a copy: decoded arrays may be read-only
    if x.dtype == torch.uint16:
        x = TF.resize(x.float(), [run.img_size], antialias=True).round().clamp(0, 65535) / 65535.0
    else:
        x = TF.resize(x, [run.img_size], antialias=True).float() / 255.0
    return TF.normalize(x, run.mean, run.std)[None]


@torch.inference_mode()
def predict_full_resolution(run: SegmentationRun, image: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Class probabilities' argmax for `image` at `size` (H, W; default the image's own), as a mask of class ids in
    the smallest unsigned type that holds them (uint8 up to 256 classes: `runtime.segment.mask_dtype`)."""
    logits = run.model(model_input(run, image).to(model_device(run.model)))
    return upsampled_argmax(logits, tuple(size or image.shape[:2]))


def upsampled_argmax(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """[1, K, h, w] logits resized bilinearly to `size` (H, W), then their argmax as a `mask_dtype(K)` mask; a large `size`
    one class's plane at a time (runtime/segment.py says why): the same mask, the first class winning a tie."""
    from pixelforge.deploy.runtime.segment import PER_CLASS_PIXELS, mask_dtype

    dtype = mask_dtype(logits.shape[1])
    if size[0] * size[1] <= PER_CLASS_PIXELS:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits.argmax(1)[0].cpu().numpy().astype(dtype)
    best = F.interpolate(logits[:, :1], size=size, mode="bilinear", align_corners=False)[0, 0]
    index = torch.zeros(size, dtype=torch.uint8 if dtype == np.uint8 else torch.int32, device=best.device)
    for k in range(1, logits.shape[1]):
        plane = F.interpolate(logits[:, k:k + 1], size=size, mode="bilinear", align_corners=False)[0, 0]
        index[plane > best] = k  # strictly: a tie keeps the earlier class, as argmax's first maximum
        torch.maximum(best, plane, out=best)
        del plane
    del best
    return index.cpu().numpy().astype(dtype, copy=False)


def select_mask_samples(run: SegmentationRun, data: str | None, split: str | None):
    from pixelforge.data.masks.source import read_masks

    from pixelforge.runs.files import held_out_split

    if data is None:
        from pixelforge.tasks.segment.task import prepare_data

        source, _ = prepare_data(run.config)
    else:
        source = read_masks(data, ignore_index=run.ignore_index)
        if len(source.classes) > len(run.classes):
            raise PixelforgeError(f"{data}: has {len(source.classes)} classes, the run knows {len(run.classes)} "
                                  f"({', '.join(run.classes)}); evaluate on data with the run's classes")
    name = held_out_split(source, split, own_data=data is None)
    chosen = source.samples if name == "all" else source.split(name)
    chosen = [s for s in chosen if s.mask is not None]
    if not chosen:
        raise PixelforgeError(f"{data or run.config.data}: no images with masks in split {name!r}")
    return chosen, name


def evaluate_segmentation(run_dir: str | Path, data: str | None = None, split: str | None = None,
                          out: str | Path | None = None, include_train: bool = False) -> EvalResult:
    """Score the run's best checkpoint on a split (default: test if the data has one, else val) at full mask
    resolution; writes metrics.json, confusion_matrix.png and predictions.png to `out` (default RUN/eval-<split>).
    With `data`, the run's own training images are left out (counted in `excluded_training_images`) unless
    `include_train`.

    Example:
        >>> evaluate_segmentation("runs/segment-shapes").metrics["miou"]  # doctest: +SKIP
        0.93
    """
    from pixelforge.data.images import ImageReadError
    from pixelforge.data.masks.images import load_image_any, load_mask
    from pixelforge.tasks.common.held_out import leave_out_training_images
    from pixelforge.tasks.segment.task import prepare_data

    run = load_segmentation_run(run_dir)
    samples, name = select_mask_samples(run, data, split)
    samples, excluded = leave_out_training_images(samples, lambda s: s.image, lambda: [
        s.image for s in prepare_data(run.config)[0].split("train")], data, name, include_train)
    matrix = ConfusionMatrix(len(run.classes), run.ignore_index)
    unreadable, first, worst = [], [], []
    with on_inference_device(run.model):
        for sample in samples:
            try:
                image, truth = load_image_any(sample.image), load_mask(sample.mask)
            except ImageReadError as exc:
                unreadable.append(str(exc))
                continue
            pred = predict_full_resolution(run, image, truth.shape)
            matrix.update(torch.from_numpy(pred), torch.from_numpy(truth))
            # The gallery shows the first images and the worst ones (lowest pixel accuracy), where the errors are.
            scored = (truth >= 0) & (truth < len(run.classes))
            accuracy = float((pred == truth)[scored].mean()) if scored.any() else 1.0
            row = (accuracy, len(first) + len(worst), sample, truth, pred, image)
            if len(first) < GALLERY_IMAGES // 2:
                first.append(row)
            else:
                worst = sorted([*worst, row], key=lambda r: r[:2])[: GALLERY_IMAGES - GALLERY_IMAGES // 2]
    rows = [(_display_at(image, truth.shape), truth, pred, f"{Path(sample.image).name} (pixel acc. {acc:.3f})")
            for acc, _, sample, truth, pred, image in first + worst]
    metrics = {**matrix.compute(run.classes), "split": name, "num_images": len(samples) - len(unreadable),
               "excluded_training_images": excluded}
    request = {"data": rd.data_key(data), "split": name, **({"include_train": True} if include_train else {})}
    out_dir = rd.evaluation_dir(out, run.run_dir / f"eval-{name}", request)
    figures = {"confusion_matrix": plot_pixel_confusion(metrics["confusion_matrix"], run.classes,
                                                        out_dir / "confusion_matrix.png")}
    if rows:
        figures["predictions"] = plot_triplets(rows, run.classes, out_dir / "predictions.png", run.ignore_index)
    rd.write_json(out_dir / "metrics.json", metrics)
    return EvalResult(metrics, out_dir, figures, unreadable)


def _display_at(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    rgb = to_display(image)
    if rgb.shape[:2] != tuple(size):
        rgb = np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.BILINEAR))
    return rgb


def score_mask_folders(gt_dir: str | Path, pred_dir: str | Path, num_classes: int,
                       ignore_index: int | None = None, classes: list[str] | None = None) -> dict:
    """Score predicted index masks against true ones, matched by file stem (e.g. from another tool).

    Values >= num_classes in the truth must be the ignore index; predictions must be < num_classes.
    Returns the keys of `segmentation_scores` plus num_images.
    """
    from pixelforge.data.masks.images import load_mask

    gt_files, pred_files = _masks_by_stem(Path(gt_dir)), _masks_by_stem(Path(pred_dir))
    missing = sorted(set(gt_files) - set(pred_files))
    if missing:
        raise PixelforgeError(f"{gt_files[missing[0]]}: no prediction with the same name in {pred_dir} "
                              f"({len(missing)} missing); predict every image or score a matching folder")
    extra = sorted(set(pred_files) - set(gt_files))
    if extra:
        raise PixelforgeError(f"{pred_files[extra[0]]}: no true mask with the same name in {gt_dir} ({len(extra)} extra)")
    matrix = ConfusionMatrix(num_classes, ignore_index)
    for stem, gt_path in sorted(gt_files.items()):
        truth, pred = load_mask(gt_path), load_mask(pred_files[stem])
        if truth.shape != pred.shape:
            raise PixelforgeError(f"{pred_files[stem]}: size {pred.shape[1]}x{pred.shape[0]} differs from its true mask "
                                  f"{gt_path} ({truth.shape[1]}x{truth.shape[0]}); predict at the mask's resolution")
        _check_values(gt_path, truth, num_classes, ignore_index)
        _check_values(pred_files[stem], pred, num_classes, None, prediction=True)
        matrix.update(torch.from_numpy(pred), torch.from_numpy(truth))
    return {**matrix.compute(classes), "num_images": len(gt_files)}


def _masks_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise PixelforgeError(f"{folder}: mask folder not found")
    found = {}
    for path in sorted(folder.rglob("*")):
        if "overlays" in path.relative_to(folder).parts[:-1]:  # `predict`'s colour overlays sit beside its masks
            continue
        if path.suffix.lower() in (".png", ".tif", ".tiff", ".bmp"):
            if path.stem in found:
                raise PixelforgeError(f"{path}: two masks named {path.stem!r} ({found[path.stem]}); stems must be unique")
            found[path.stem] = path
    if not found:
        raise PixelforgeError(f"{folder}: no mask files (.png, .tif, .bmp)")
    return found


def _check_values(path: Path, mask: np.ndarray, num_classes: int, ignore_index: int | None,
                  prediction: bool = False) -> None:
    bad = (mask < 0) | (mask >= num_classes)
    if ignore_index is not None:
        bad &= mask != ignore_index
    if bad.any():
        value = int(mask[bad][0])
        hint = f" or the ignore index {ignore_index}" if ignore_index is not None else " (pass --ignore-index if it marks unlabelled pixels)"
        if prediction:  # --ignore-index applies to the truth only: the hint above would not help a prediction
            hint = "; a prediction must give every pixel a class (check --num-classes)"
        raise PixelforgeError(f"{path}: pixel value {value} is not a class id 0..{num_classes - 1}{hint}")


def predict_segmentation(run_dir: str | Path, paths: list[str | Path], out: str | Path) -> list[dict]:
    """Predict a mask for each image (files, folders or glob patterns): OUT/STEM.png (palette index PNG, the class
    ids as pixel values) and OUT/overlays/STEM.png.

    Returns one dict per image: path, mask, overlay, class_fractions {class: share of the image's pixels} and a
    one-line summary; an unreadable image gets {"path", "error"} instead.

    Example:
        >>> predict_segmentation("runs/segment-shapes", ["scan.png"], "out")[0]["mask"]  # doctest: +SKIP
        'out/scan.png'
    """
    from pixelforge.deploy.runtime.mask_files import predict_files

    run = load_segmentation_run(run_dir)
    return predict_files(paths, Path(out), run.classes, lambda image: predict_full_resolution(run, image),
                         run.bit_depth)
