"""Exporting a segmentation run to an ONNX package, and predicting masks from that package without torch.

    PACKAGE/model.onnx        fixed input [1, C, S, S] (S = the run's img_size), output logits [1, K, S, S]
            preprocess.json   size, resize rule, mean/std, channels, bit depth: everything needed to feed the model
            classes.json      class names, index = class id in the predicted masks
            package.json      "task": "segment", model file, input/output names, export settings
            parity.json       ONNX Runtime vs PyTorch: share of pixels whose predicted class agrees, max |Δlogit|

Preprocessing for the package is deliberately simple enough to re-implement anywhere: resize the whole image to
S x S (bilinear), scale by bit depth to [0, 1], normalise. The predicted logits are resized back to the image's
size before the per-pixel argmax. Training resized the shorter side instead (no stretching), so the two agree
exactly for square images and differ slightly for elongated ones.

The export is refused unless at least 99.9% of the validation pixels get the same class from ONNX Runtime as
from PyTorch, both fed the same preprocessed tensor (the check isolates the conversion).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pixelforge.errors import PixelforgeError

MIN_AGREEMENT = 0.999


def preprocess_image(image: np.ndarray, pre: dict) -> np.ndarray:
    """An HxWxC uint8/uint16 image as the package's float32 [1, C, S, S] input (numpy and PIL only)."""
    from PIL import Image

    from pixelforge.data.masks.images import match_channels

    array = match_channels(image, pre["channels"]).astype(np.float32) / (65535.0 if image.dtype == np.uint16 else 255.0)
    size = tuple(pre["size"])  # (height, width)
    planes = [np.asarray(Image.fromarray(array[..., c], mode="F").resize((size[1], size[0]), Image.BILINEAR))
              for c in range(array.shape[-1])]
    x = np.stack(planes)
    x = (x - np.asarray(pre["mean"], np.float32)[:, None, None]) / np.asarray(pre["std"], np.float32)[:, None, None]
    return x[None].astype(np.float32)


def logits_to_mask(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """[1, K, s, s] logits -> int64 [height, width] class ids (logits resized bilinearly before the argmax)."""
    from PIL import Image

    planes = [np.asarray(Image.fromarray(plane.astype(np.float32), mode="F").resize((width, height), Image.BILINEAR))
              for plane in logits[0]]
    return np.stack(planes).argmax(0).astype(np.int64)


def export_segmentation_package(run_dir: str | Path, out: str | Path, data: str | None = None,
                                parity_images: int = 32, opset: int = 17) -> Path:
    """Export the run's best checkpoint to the package folder `out` (must not exist or be empty) and check it.

    Returns the package folder; its parity.json holds the check. Raises PixelforgeError when ONNX Runtime and
    PyTorch agree on fewer than 99.9% of the validation pixels (nothing is left at `out` then).

    Example:
        >>> package = export_segmentation_package("runs/segment-shapes", "packages/seg")  # doctest: +SKIP
        >>> json.loads((package / "parity.json").read_text())["pixel_agreement"]  # doctest: +SKIP
        1.0
    """
    from pixelforge.deploy.package import staged_folder, write_dense_package_files, write_json
    from pixelforge.tasks.segment.evaluate import select_mask_samples, load_segmentation_run

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PixelforgeError(f"{out}: already exists and is not empty; packages are never overwritten, choose a new --out")
    run = load_segmentation_run(run_dir)
    samples, split = select_mask_samples(run, data, "val" if data is None else None)
    samples = samples[:parity_images]
    size = run.img_size
    pre = {"task": "segment", "size": [size, size], "resize": "stretch-bilinear", "channels": run.in_channels,
           "bit_depth": 16 if _any_sixteen_bit(samples) else 8, "scale": "1/255 for 8-bit, 1/65535 for 16-bit",
           "mean": run.mean, "std": run.std, "layout": "NCHW", "output": "logits; resize to the image, argmax"}
    with staged_folder(out) as staging:
        _write_onnx(run.model, staging / "model.onnx", run.in_channels, size, opset)
        write_dense_package_files(staging, run.run_dir, pre, run.classes, {
            "task": "segment", "output_name": "logits", "num_classes": len(run.classes), "arch": run.model.arch,
            "backbone": run.model.backbone_name, "input_shape": [1, run.in_channels, size, size]}, opset)
        report = _parity(run, staging, pre, samples, split)
        write_json(staging / "parity.json", report)
        if not report["passed"]:
            raise PixelforgeError(f"export refused: ONNX Runtime and PyTorch agree on {100 * report['pixel_agreement']:.3f}% "
                                  f"of val pixels (need {100 * MIN_AGREEMENT:.1f}%); report the model and opset {opset}")
    return out


def _any_sixteen_bit(samples) -> bool:
    from pixelforge.data.masks.images import probe_image

    return any(probe_image(s.image)[1] == 16 for s in samples[:16])


def _write_onnx(model, path: Path, channels: int, size: int, opset: int) -> None:
    import warnings

    import torch

    model = model.eval().to(memory_format=torch.contiguous_format)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic: the input size is fixed
        torch.onnx.export(model, (torch.zeros(1, channels, size, size),), str(path), input_names=["image"],
                          output_names=["logits"], dynamo=False, opset_version=opset)


def _parity(run, package: Path, pre: dict, samples, split: str) -> dict:
    import onnxruntime as ort
    import torch

    from pixelforge.data.masks.images import load_image_any

    session = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    same = total = 0
    max_diff = 0.0
    for sample in samples:
        image = load_image_any(sample.image)
        x = preprocess_image(image, pre)
        with torch.inference_mode():
            expected = run.model(torch.from_numpy(x)).numpy()
        got = session.run(["logits"], {"image": x})[0]
        max_diff = max(max_diff, float(np.abs(expected - got).max()))
        height, width = image.shape[:2]
        a, b = logits_to_mask(expected, height, width), logits_to_mask(got, height, width)
        same, total = same + int((a == b).sum()), total + a.size
    agreement = same / max(total, 1)
    return {"split": split, "images": len(samples), "pixels": total, "pixel_agreement": agreement,
            "max_abs_logit_diff": max_diff, "required_agreement": MIN_AGREEMENT, "passed": agreement >= MIN_AGREEMENT}


def _open_package(package: Path):
    import onnxruntime as ort

    try:
        pre = json.loads((package / "preprocess.json").read_text())
        manifest = json.loads((package / "package.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PixelforgeError(f"{package}: not a segmentation package written by `pixelforge export` ({exc})") from None
    if manifest.get("task") != "segment":
        raise PixelforgeError(f"{package}: a {manifest.get('task', 'classify')!r} package, not a segmentation one")
    session = ort.InferenceSession(str(package / manifest["models"]["fp32"]), providers=["CPUExecutionProvider"])

    def predict(image: np.ndarray) -> np.ndarray:
        logits = session.run([manifest["output_name"]], {manifest["input_name"]: preprocess_image(image, pre)})[0]
        return logits_to_mask(logits, *image.shape[:2])

    return predict


def predict_masks_package(package_dir: str | Path, image_paths: list[str | Path]) -> list[np.ndarray]:
    """Class-id masks (int64, each at its image's own size) from an exported package, with ONNX Runtime only.

    Example:
        >>> masks = predict_masks_package("packages/seg", ["scan.png"])  # doctest: +SKIP
        >>> masks[0].shape  # doctest: +SKIP
        (128, 128)
    """
    from pixelforge.data.masks.images import load_image_any

    predict = _open_package(Path(package_dir))
    return [predict(load_image_any(path)) for path in image_paths]


def predict_package_folder(package_dir: str | Path, paths: list[str | Path], out: str | Path) -> list[dict]:
    """`pixelforge predict PACKAGE IMAGES --out DIR` for a segmentation package: the same files and result dicts
    as `evaluation.segmentation.predict_segmentation`, without torch. Unreadable images get an "error" entry."""
    from pixelforge.viz.segmentation_overlay import predict_files

    package = Path(package_dir)
    classes = json.loads((package / "classes.json").read_text())
    return predict_files(paths, Path(out), classes, _open_package(package))
