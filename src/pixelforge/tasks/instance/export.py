"""Exporting an instance-segmentation (Mask R-CNN) run to an ONNX package, and predicting masks from it without torch.

    PACKAGE/model.onnx        the whole torchvision Mask R-CNN: input one float image [3, H, W] in [0, 1] whose
                              longest side is img_size (H, W dynamic), outputs boxes [N, 4] (XYXY, input pixels),
                              scores [N], labels [N] (1..K) and masks [N, 1, H, W]: each detection's 28x28 mask
                              pasted into the input image as probabilities, exactly what torchvision answers
            preprocess.json   img_size and the resize rule (as for detection)
            classes.json      category names, label i + 1 = classes[i]
            package.json      "task": "instance", the detection package's keys, output names incl. "masks"
            parity.json       ONNX Runtime vs PyTorch detections and masks on validation images

It is detection's package (deploy/export_detection.py) with one more output, so detection's runtime serves it
(deploy/dense_detection.py resizes each mask's probabilities to the original image and thresholds them at 0.5, as
tasks/instance/evaluate.py does). The export is refused unless every PyTorch detection has an ONNX Runtime twin (the
detection rule: same label, IoU >= 0.99, |Δscore| <= 1e-3) and the twins' binarised (> 0.5) masks agree on at
least 99.9 % of their pixels.
"""

from __future__ import annotations

from pathlib import Path


from pixelforge.deploy.export_detection import MATCH_IOU, SCORE_TOLERANCE, box_parity, encode_mask, twin_pairs
from pixelforge.errors import PixelforgeError

MASK_AGREEMENT = 0.999  # share of matched masks' pixels that must binarise the same on both sides
OUTPUTS = ["boxes", "scores", "labels", "masks"]


def export_instance_package(run_dir: str | Path, out: str | Path, data: str | None = None,
                            parity_images: int = 32, opset: int = 17) -> Path:
    """Export the run's best checkpoint to the package folder `out` (must not exist or be empty) and check it.

    Returns the package folder. Raises PixelforgeError when the parity check fails (nothing is left at `out`).

    Example:
        >>> package = export_instance_package("runs/instance-shapes", "packages/inst")  # doctest: +SKIP
        >>> json.loads((package / "parity.json").read_text())["mask_agreement"] >= 0.999  # doctest: +SKIP
        True
    """
    from pixelforge.deploy.package import staged_folder, write_dense_package_files, write_json
    from pixelforge.tasks.detect.evaluate import select_box_images
    from pixelforge.tasks.instance.evaluate import load_instance_run
    from pixelforge.tasks.instance.task import prepare_data

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PixelforgeError(f"{out}: already exists and is not empty; packages are never overwritten, choose a new --out")
    run = load_instance_run(run_dir)
    images, _, split, _ = select_box_images(run.config, run.classes, data, "val" if data is None else None, prepare_data)
    size = run.config.img_size
    pre = {"task": "instance", "img_size": size, "resize": "longest side to img_size, aspect kept",
           "scale": "RGB / 255, float32", "layout": "CHW, one image per call", "normalize": "inside the model",
           "output": "boxes XYXY in input pixels (scale back to the image), scores, labels 1..K, masks [N, 1, H, W] "
                     "probabilities in input pixels (resize to the image, then > 0.5)"}
    with staged_folder(out) as staging:
        _write_onnx(run.model, staging / "model.onnx", size, opset)
        write_dense_package_files(staging, run.run_dir, pre, run.classes, {
            "task": "instance", "output_names": OUTPUTS, "arch": run.config.arch or "maskrcnn",
            "backbone": run.config.model, "category_ids": run.category_ids, "img_size": size}, opset)
        report = _parity(run, staging / "model.onnx", images[:parity_images], split)
        write_json(staging / "parity.json", report)
        if not report["passed"]:
            raise PixelforgeError(f"export refused: {report['unmatched']} of {report['torch_detections']} detections "
                                  f"differ or masks agree on {100 * report['mask_agreement']:.3f} % of pixels "
                                  f"(need IoU >= {MATCH_IOU}, |Δscore| <= {SCORE_TOLERANCE}, masks >= "
                                  f"{100 * MASK_AGREEMENT:.1f} %) between ONNX Runtime and PyTorch; report the model "
                                  f"and opset {opset}")
    return out


def _write_onnx(model, path: Path, size: int, opset: int) -> None:
    import warnings

    import torch

    class SingleImage(torch.nn.Module):  # one image tensor in, the four outputs as a tuple out
        def __init__(self, detector):
            super().__init__()
            self.detector = detector

        def forward(self, image):
            found = self.detector([image])[0]
            return found["boxes"], found["scores"], found["labels"], found["masks"]

    example = torch.rand(3, size, int(size * 0.75))
    axes = {"image": {1: "height", 2: "width"}, **{name: {0: "detections"} for name in OUTPUTS}}
    axes["masks"].update({2: "height", 3: "width"})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic inside torchvision's transform
        torch.onnx.export(SingleImage(model).eval(), (example,), str(path), input_names=["image"],
                          output_names=OUTPUTS, opset_version=opset, dynamo=False, dynamic_axes=axes)


def _parity(run, model_path: Path, images: list, split: str) -> dict:
    """Detection's box parity, plus: each matched pair's thresholded masks agree on >= MASK_AGREEMENT of pixels."""

    def compare_masks(found, outputs, expected, got) -> dict:
        masks, agree, pixels, worst = outputs[3], 0, 0, 1.0
        for i, j in twin_pairs(expected, got):
            same = int(((found["masks"][i].numpy() > 0.5) == (masks[j] > 0.5)).sum())
            agree, pixels, worst = agree + same, pixels + masks[j].size, min(worst, same / max(masks[j].size, 1))
        return {"mask_pixels_agreeing": agree, "mask_pixels": pixels, "min_mask_agreement": worst}

    report = box_parity(run.model, model_path, images, run.config.img_size, split, compare_masks)
    pixels = report.pop("mask_pixels", 0)
    agreement = report.pop("mask_pixels_agreeing", 0) / pixels if pixels else 1.0
    report.setdefault("min_mask_agreement", 1.0)
    report.update(mask_agreement=agreement, required_mask_agreement=MASK_AGREEMENT,
                  passed=report["passed"] and agreement >= MASK_AGREEMENT)
    return report


# --- torch-free prediction and serving ------------------------------------------------------------------------------

def instance_answer(result: dict, width: int, height: int, score_threshold: float) -> dict:
    """The server's JSON for one image: detection's answer plus each detection's mask as COCO RLE ("rle") at the
    image's own size."""
    from pixelforge.deploy.dense_api import keep_detections

    found = [d for d in result["detections"] if float(d["score"]) >= score_threshold]
    found.sort(key=lambda d: -float(d["score"]))  # keep_detections' order, so masks stay with their boxes
    detections = keep_detections(found, score_threshold, width, height)
    for det, source in zip(detections, found):
        det["rle"] = encode_mask(source["mask"])
    return {"task": "instance", "width": width, "height": height, "detections": detections}


def predict_package_folder(package_dir: str | Path, paths: list[str | Path], out: str | Path,
                           score_threshold: float = 0.3, nms_iou: float = 0.5) -> list[dict]:
    """`pixelforge predict PACKAGE IMAGES --out DIR` for an instance package: the files and result dicts of
    `evaluation.instance.predict_instance` (predictions.json with RLE masks, images.json, annotated PNGs), without
    torch; detection's package predictor, which adds the masks for instance packages.

    Example:
        >>> predict_package_folder("packages/inst", ["photos/"], "predictions")[0]["summary"]  # doctest: +SKIP
        '2 objects: circle 0.98, star 0.91'
    """
    from pixelforge.deploy import export_detection
    from pixelforge.deploy.package import read_json_file

    task = read_json_file(Path(package_dir) / "package.json").get("task")
    if task != "instance":
        raise PixelforgeError(f"{package_dir}: a {task!r} package, not an instance segmentation one")
    return export_detection.predict_package_folder(package_dir, paths, out, score_threshold, nms_iou)
