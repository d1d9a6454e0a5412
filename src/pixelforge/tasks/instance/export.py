"""Exporting an instance-segmentation (Mask R-CNN) run to an ONNX package (`pixelforge export RUN`, `--task instance`).

    PACKAGE/model.onnx        the whole torchvision Mask R-CNN: input one float image [3, H, W] in [0, 1] whose
                              longest side is img_size (H, W dynamic), outputs boxes [N, 4] (XYXY, input pixels),
                              scores [N], labels [N] (1..K) and masks [N, 1, H, W]: each detection's 28x28 mask
                              pasted into the input image as probabilities, exactly what torchvision answers
            preprocess.json   img_size and the resize rule (as for detection)
            classes.json      category names, label i + 1 = classes[i]
            package.json      "task": "instance", the detection package's keys, output names incl. "masks"
            model.fp16.onnx   with --fp16: backbone, FPN and heads in fp16, box decoding, NMS and mask pasting
                              float32
            parity.json       ONNX Runtime vs PyTorch detections and masks on validation images

It is detection's package with one more output, so it is traced and checked with the box tasks' shared code
(tasks/common/boxes_export.py) and run by `pixelforge.deploy.runtime.instance`, which resizes each mask's
probabilities to the original image and thresholds them at 0.5, as tasks/instance/evaluate.py does. The export is
refused unless every PyTorch detection has an ONNX Runtime twin (the detection rule: same label, IoU >= 0.99,
|Δscore| <= 1e-3; detections the runtimes' NMS or per-image cap split at a tie are counted as such, not as failures)
and the twins' binarised (> 0.5) masks agree on at least 99.9 % of their pixels. An fp16 model is judged as
detection's (tasks/common/boxes_export.py: `check_fp16_boxes`, box mAP included) and its twins' masks must agree on
at least FP16_MASK_AGREEMENT (99 %) of their pixels.
"""

from __future__ import annotations

from pathlib import Path

from pixelforge.deploy.export.folder import (reject_options, require_new_out, staged_folder, write_dense_package_files,
                                            write_json)
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.common.boxes_export import (BOX_OUTPUTS, BOX_TASKS_NO_INT8, FP16_TOLERANCE, MATCH_IOU,
                                                  SCORE_TOLERANCE, Tolerance,
                                                  box_parity, check_fp16_boxes, ties_allowed, twin_pairs,
                                                  write_detector_fp16, write_detector_onnx)

MASK_AGREEMENT = 0.999  # share of matched masks' pixels that must binarise the same on both sides
FP16_MASK_AGREEMENT = 0.99  # the same for the fp16 model: its mask logits round to 11 bits near the 0.5 edge
OUTPUTS = [*BOX_OUTPUTS, "masks"]


def export_package(run_dir: str | Path, out: str | Path, data: str | None = None, parity_images: int = 32,
                   opset: int = 17, format: str | None = "onnx", fp16: bool = False, **options) -> Path:
    """Export the run's best checkpoint to the package folder `out` (must not exist or be empty) and check it.

    Returns the package folder. Raises PixelforgeError when the parity check fails (nothing is left at `out`), or
    for options an instance package cannot honour (`int8`: `BOX_TASKS_NO_INT8` says why; `format` other than onnx,
    ...). With `fp16`, also model.fp16.onnx, judged as the module docstring says.

    Example:
        >>> package = export_package("runs/instance-shapes", "packages/inst")  # doctest: +SKIP
        >>> json.loads((package / "parity.json").read_text())["mask_agreement"] >= 0.999  # doctest: +SKIP
        True
    """
    from pixelforge.tasks.common.boxes import select_box_images
    from pixelforge.tasks.instance.evaluate import load_instance_run
    from pixelforge.tasks.instance.data import prepare_data

    reject_options("instance", options, format, why=BOX_TASKS_NO_INT8)
    out = Path(out)
    require_new_out(out)
    run = load_instance_run(run_dir)
    images, _, split, _ = select_box_images(run.config, run.classes, data, "val" if data is None else None, prepare_data)
    size = run.config.img_size
    pre = {"task": "instance", "img_size": size, "resize": "longest side to img_size, aspect kept",
           "scale": "RGB / 255, float32", "layout": "CHW, one image per call", "normalize": "inside the model",
           "output": "boxes XYXY in input pixels (scale back to the image), scores, labels 1..K, masks [N, 1, H, W] "
                     "probabilities in input pixels (resize to the image, then > 0.5)"}
    with staged_folder(out) as staging:
        write_detector_onnx(run.model, staging / "model.onnx", size, opset, OUTPUTS)
        write_dense_package_files(staging, run.run_dir, pre, run.classes, {
            "task": "instance", "output_names": OUTPUTS, "arch": run.config.arch or "maskrcnn",
            "backbone": run.config.model, "category_ids": run.category_ids, "img_size": size}, opset)
        report = _parity(run, staging / "model.onnx", images[:parity_images], split)
        write_json(staging / "parity.json", report)
        if not report["passed"]:
            raise PixelforgeError(f"export refused: {report['unmatched']} of {report['torch_detections']} detections "
                                  f"differ or masks agree on {100 * report['mask_agreement']:.3f} % of pixels "
                                  f"(need IoU >= {MATCH_IOU}, |Δscore| <= {SCORE_TOLERANCE}, masks >= "
                                  f"{100 * MASK_AGREEMENT:.1f} %; {ties_allowed(report)}) between ONNX Runtime and "
                                  f"PyTorch; report the model and opset {opset}")
        if fp16:
            write_detector_fp16(staging)
            fp16_report = _parity(run, staging / "model.fp16.onnx", images[:parity_images], split, score_map=True,
                                  tol=FP16_TOLERANCE)
            agreement = fp16_report["mask_agreement"]
            fp16_report.update(required_mask_agreement=FP16_MASK_AGREEMENT)
            report["fp16"] = check_fp16_boxes(fp16_report, f"; masks agree on {100 * agreement:.2f} % of pixels, need "
                                              f"{100 * FP16_MASK_AGREEMENT:g} %", agreement >= FP16_MASK_AGREEMENT)
            write_json(staging / "parity.json", report)
    return out


def _parity(run, model_path: Path, images: list, split: str, score_map: bool = False,
            tol: Tolerance = Tolerance()) -> dict:
    """Detection's box parity, plus: each matched pair's thresholded masks agree on >= MASK_AGREEMENT of pixels."""

    def compare_masks(found, outputs, expected, got, tol) -> dict:
        masks, agree, pixels, worst = outputs[3], 0, 0, 1.0
        for i, j in twin_pairs(expected, got, tol):
            same = int(((found["masks"][i].numpy() > 0.5) == (masks[j] > 0.5)).sum())
            agree, pixels, worst = agree + same, pixels + masks[j].size, min(worst, same / max(masks[j].size, 1))
        return {"mask_pixels_agreeing": agree, "mask_pixels": pixels, "min_mask_agreement": worst}

    report = box_parity(run.model, model_path, images, run.config.img_size, split, compare_masks, score_map, tol)
    pixels = report.pop("mask_pixels", 0)
    agreement = report.pop("mask_pixels_agreeing", 0) / pixels if pixels else 1.0
    report.setdefault("min_mask_agreement", 1.0)
    report.update(mask_agreement=agreement, required_mask_agreement=MASK_AGREEMENT,
                  passed=report["passed"] and agreement >= MASK_AGREEMENT)
    return report
