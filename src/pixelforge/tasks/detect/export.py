"""Exporting a detection run to an ONNX package (`pixelforge export RUN` for `--task detect` runs).

    PACKAGE/model.onnx        the whole torchvision detector: input one float image [3, H, W] in [0, 1] whose
                              longest side is img_size (H, W dynamic), outputs boxes [N, 4] (XYXY, input pixels),
                              scores [N], labels [N] (1..K); normalisation, heads, box decoding and NMS in the graph
            preprocess.json   img_size and the resize rule: everything needed to feed the model
            classes.json      category names, label i + 1 = classes[i]
            package.json      "task": "detect", model file, input/output names, category ids, export settings
            model.fp16.onnx   with --fp16: backbone, FPN and heads in fp16, box decoding and NMS float32
            parity.json       ONNX Runtime vs PyTorch detections on validation images, matched one to one (and
                              for fp16 also both sides' mAP against the images' ground truth)

The trace and the parity rule are the box tasks' shared ones (tasks/common/boxes_export.py); the package runs
without torch in `pixelforge.deploy.runtime.detect`.
"""

from __future__ import annotations

from pathlib import Path

from pixelforge.deploy.export.folder import (reject_options, require_new_out, staged_folder, write_dense_package_files,
                                            write_json)
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.common.boxes_export import (BOX_OUTPUTS, BOX_TASKS_NO_INT8, FP16_TOLERANCE, MATCH_IOU,
                                                  SCORE_TOLERANCE, box_parity, check_fp16_boxes, ties_allowed, write_detector_fp16,
                                                  write_detector_onnx)


def export_package(run_dir: str | Path, out: str | Path, data: str | None = None, parity_images: int = 32,
                   opset: int = 17, format: str | None = "onnx", fp16: bool = False, **options) -> Path:
    """Export the run's best checkpoint to the package folder `out` (must not exist or be empty) and check it.

    Returns the package folder. Raises PixelforgeError when the parity check fails (nothing is left at `out`), or
    for options a detection package cannot honour (`int8`: `BOX_TASKS_NO_INT8` says why; `format` other than onnx,
    ...). With `fp16`, also model.fp16.onnx (tasks/common/boxes_export.py: `check_fp16_boxes` judges it).

    Example:
        >>> package = export_package("runs/detect-shapes", "packages/det")  # doctest: +SKIP
        >>> json.loads((package / "parity.json").read_text())["passed"]  # doctest: +SKIP
        True
    """
    from pixelforge.tasks.common.boxes import select_box_images
    from pixelforge.tasks.detect.evaluate import load_detector
    from pixelforge.tasks.detect.task import prepare_data

    reject_options("detect", options, format, why=BOX_TASKS_NO_INT8)
    out = Path(out)
    require_new_out(out)
    loaded = load_detector(run_dir)
    images, _, split, _ = select_box_images(loaded.config, loaded.classes, data, "val" if data is None else None,
                                            prepare_data)
    size = loaded.config.img_size
    pre = {"task": "detect", "img_size": size, "resize": "longest side to img_size, aspect kept",
           "scale": "RGB / 255, float32", "layout": "CHW, one image per call", "normalize": "inside the model",
           "output": "boxes XYXY in input pixels (scale back to the image), scores, labels 1..K"}
    with staged_folder(out) as staging:
        write_detector_onnx(loaded.model, staging / "model.onnx", size, opset)
        write_dense_package_files(staging, loaded.run_dir, pre, loaded.classes, {
            "task": "detect", "output_names": BOX_OUTPUTS, "arch": loaded.config.arch,
            "backbone": loaded.config.model, "category_ids": loaded.category_ids, "img_size": size}, opset)
        report = box_parity(loaded.model, staging / "model.onnx", images[:parity_images], size, split)
        write_json(staging / "parity.json", report)
        if not report["passed"]:
            raise PixelforgeError(f"export refused: {report['unmatched']} of {report['torch_detections']} detections "
                                  f"differ between ONNX Runtime and PyTorch (IoU >= {MATCH_IOU}, |Δscore| <= "
                                  f"{SCORE_TOLERANCE}; {ties_allowed(report)}); report the model and opset {opset}")
        if fp16:
            write_detector_fp16(staging)
            report["fp16"] = check_fp16_boxes(box_parity(loaded.model, staging / "model.fp16.onnx",
                                                         images[:parity_images], size, split, score_map=True,
                                                         tol=FP16_TOLERANCE))
            write_json(staging / "parity.json", report)
    return out
