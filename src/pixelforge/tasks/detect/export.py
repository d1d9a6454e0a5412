"""Exporting a detection run to an ONNX package, and predicting boxes from that package without torch.

    PACKAGE/model.onnx        the whole torchvision detector: input one float image [3, H, W] in [0, 1] whose
                              longest side is img_size (H, W dynamic), outputs boxes [N, 4] (XYXY, input pixels),
                              scores [N], labels [N] (1..K); normalisation, heads, box decoding and NMS in the graph
            preprocess.json   img_size and the resize rule: everything needed to feed the model
            classes.json      category names, label i + 1 = classes[i]
            package.json      "task": "detect", model file, input/output names, category ids, export settings
            parity.json       ONNX Runtime vs PyTorch detections on validation images, matched one to one

torchvision's detectors trace to ONNX whole (torch.onnx.export, TorchScript-based, opset 17), including their
NMS, so the package needs no post-processing code of its own beyond scaling boxes back to the original image.
The export is refused unless every detection PyTorch makes on the parity images has an ONNX Runtime twin with the
same label, IoU >= 0.99 and a score within 1e-3 (and the other way round); detections within 1e-3 of the
model's score threshold may appear on one side only. Both sides get the same preprocessed tensor, so the check
isolates the conversion.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pixelforge.errors import PixelforgeError

MATCH_IOU = 0.99
SCORE_TOLERANCE = 1e-3


def export_detection_package(run_dir: str | Path, out: str | Path, data: str | None = None,
                             parity_images: int = 32, opset: int = 17) -> Path:
    """Export the run's best checkpoint to the package folder `out` (must not exist or be empty) and check it.

    Returns the package folder. Raises PixelforgeError when the parity check fails (nothing is left at `out`).

    Example:
        >>> package = export_detection_package("runs/detect-shapes", "packages/det")  # doctest: +SKIP
        >>> json.loads((package / "parity.json").read_text())["passed"]  # doctest: +SKIP
        True
    """
    from pixelforge.deploy.package import staged_folder, write_dense_package_files, write_json
    from pixelforge.tasks.detect.evaluate import load_detector, select_box_images
    from pixelforge.tasks.detect.task import prepare_data

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PixelforgeError(f"{out}: already exists and is not empty; packages are never overwritten, choose a new --out")
    loaded = load_detector(run_dir)
    images, _, split, _ = select_box_images(loaded.config, loaded.classes, data, "val" if data is None else None,
                                            prepare_data)
    size = loaded.config.img_size
    pre = {"task": "detect", "img_size": size, "resize": "longest side to img_size, aspect kept",
           "scale": "RGB / 255, float32", "layout": "CHW, one image per call", "normalize": "inside the model",
           "output": "boxes XYXY in input pixels (scale back to the image), scores, labels 1..K"}
    with staged_folder(out) as staging:
        _write_onnx(loaded.model, staging / "model.onnx", size, opset)
        write_dense_package_files(staging, loaded.run_dir, pre, loaded.classes, {
            "task": "detect", "output_names": ["boxes", "scores", "labels"], "arch": loaded.config.arch,
            "backbone": loaded.config.model, "category_ids": loaded.category_ids, "img_size": size}, opset)
        report = box_parity(loaded.model, staging / "model.onnx", images[:parity_images], size, split)
        write_json(staging / "parity.json", report)
        if not report["passed"]:
            raise PixelforgeError(f"export refused: {report['unmatched']} of {report['torch_detections']} detections "
                                  f"differ between ONNX Runtime and PyTorch (IoU >= {MATCH_IOU}, |Δscore| <= "
                                  f"{SCORE_TOLERANCE}); report the model and opset {opset}")
    return out


class _SingleImage:
    """The detector as ONNX sees it: one image tensor in, (boxes, scores, labels) out."""

    def __new__(cls, model):
        import torch

        class SingleImage(torch.nn.Module):
            def __init__(self, detector):
                super().__init__()
                self.detector = detector

            def forward(self, image):
                out = self.detector([image])[0]
                return out["boxes"], out["scores"], out["labels"]

        return SingleImage(model).eval()


def _write_onnx(model, path: Path, size: int, opset: int) -> None:
    import warnings

    import torch

    example = torch.rand(3, size, int(size * 0.75))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic inside torchvision's transform
        torch.onnx.export(_SingleImage(model), (example,), str(path), input_names=["image"],
                          output_names=["boxes", "scores", "labels"], opset_version=opset, dynamo=False,
                          dynamic_axes={"image": {1: "height", 2: "width"}, "boxes": {0: "detections"},
                                        "scores": {0: "detections"}, "labels": {0: "detections"}})


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of XYXY boxes a [N, 4] and b [M, 4]."""
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def twin_pairs(expected: tuple, got: tuple) -> list[tuple[int, int]]:
    """(expected index, got index) one-to-one twins between two (boxes, scores, labels) sets, best expected score
    first: same label, IoU >= MATCH_IOU, |Δscore| <= SCORE_TOLERANCE, the highest IoU candidate."""
    (eb, es, el), (gb, gs, gl) = expected, got
    iou = box_iou(eb, gb) if len(eb) and len(gb) else np.zeros((len(eb), len(gb)))
    used, pairs = set(), []
    for i in np.argsort(-es):
        candidates = [j for j in range(len(gb)) if j not in used and gl[j] == el[i] and iou[i, j] >= MATCH_IOU
                      and abs(gs[j] - es[i]) <= SCORE_TOLERANCE]
        if candidates:
            j = max(candidates, key=lambda k: iou[i, k])
            used.add(j)
            pairs.append((int(i), j))
    return pairs


def match_detections(expected: tuple, got: tuple, floor: float) -> tuple[int, int, float, float]:
    """Match two (boxes, scores, labels) sets one to one; returns (matched, failures, max |Δscore|, min IoU).

    A failure is a detection without a twin, unless it scores within SCORE_TOLERANCE of `floor` (the model's
    score threshold), where a rounding difference may legitimately put it on one side only.
    """
    (eb, es, _), (gb, gs, _) = expected, got
    pairs = twin_pairs(expected, got)
    twins, used = {i for i, _ in pairs}, {j for _, j in pairs}
    worst_score = max((abs(float(gs[j] - es[i])) for i, j in pairs), default=0.0)
    worst_iou = min((float(box_iou(eb[i][None], gb[j][None])[0, 0]) for i, j in pairs), default=1.0)
    lonely = [es[i] for i in range(len(eb)) if i not in twins] + [gs[j] for j in range(len(gb)) if j not in used]
    failures = sum(1 for score in lonely if score >= floor + SCORE_TOLERANCE)
    return len(pairs), failures, worst_score, worst_iou


def box_parity(model, model_path: Path, images: list, size: int, split: str, compare_extra=None) -> dict:
    """PyTorch vs ONNX Runtime on `images`, detection by detection (`match_detections`).

    `compare_extra(torch_output, onnx_outputs, expected, got)`, when given, compares what else the model returns
    (instance masks) and its dict of sums is added up over the images; the caller judges it.
    """
    import onnxruntime as ort
    import torch

    from pixelforge.data.boxes.dataset import BoxDataset
    from pixelforge.data.boxes.transforms import eval_box_transform
    from pixelforge.models.detectors import EVAL_SCORE_THRESH

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    data = BoxDataset(images, sorted({int(c) for i in images for c in i.labels}), eval_box_transform(size), size)
    data.preload()
    totals = {"torch_detections": 0, "onnx_detections": 0, "matched": 0, "unmatched": 0}
    extra: dict = {}
    worst_score, worst_iou = 0.0, 1.0
    for index in range(len(data)):
        x = data[index][0].as_subclass(torch.Tensor)
        with torch.no_grad():
            out = model([x])[0]
        outputs = [np.asarray(v) for v in session.run(None, {"image": x.numpy()})]
        expected, got = (out["boxes"].numpy(), out["scores"].numpy(), out["labels"].numpy()), tuple(outputs[:3])
        matched, unmatched, score_diff, iou = match_detections(expected, got, EVAL_SCORE_THRESH)
        totals["torch_detections"] += len(expected[0])
        totals["onnx_detections"] += len(got[0])
        totals["matched"] += matched
        totals["unmatched"] += unmatched
        worst_score, worst_iou = max(worst_score, score_diff), min(worst_iou, iou)
        for key, value in (compare_extra(out, outputs, expected, got) if compare_extra else {}).items():
            extra[key] = min(extra.get(key, value), value) if key.startswith("min_") else extra.get(key, 0) + value
    return {"split": split, "images": len(data), **totals, "max_score_diff": worst_score, "min_matched_iou": worst_iou,
            "required_iou": MATCH_IOU, "score_tolerance": SCORE_TOLERANCE, "passed": totals["unmatched"] == 0,
            **extra}


def predict_boxes_package(package_dir: str | Path, image_paths: list[str | Path]) -> list[list[dict]]:
    """Detections [{box [x1, y1, x2, y2] in the image's pixels, score, label}] per image, via ONNX Runtime only.

    Example:
        >>> predict_boxes_package("packages/det", ["street.jpg"])[0][0]["label"]  # doctest: +SKIP
        'car'
    """
    from pixelforge.data.images import load_rgb
    from pixelforge.deploy.dense_detection import DetectionRuntime

    runtime = DetectionRuntime(Path(package_dir), None, None, None, False)
    return [runtime.predict_images([load_rgb(path)])[0]["detections"] for path in image_paths]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression (indices kept, best first), in NumPy for the torch-free path."""
    order, keep = list(np.argsort(-scores)), []
    while order:
        best, order = order[0], order[1:]
        keep.append(int(best))
        if order:
            overlaps = box_iou(boxes[best][None], boxes[order])[0]
            order = [k for k, o in zip(order, overlaps) if o <= iou]
    return keep


def classwise_nms(found: list[dict], iou: float) -> list[dict]:
    """Detections {box, score, label} after NMS within each class at `iou`, best score first."""
    keep = []
    for label in {d["label"] for d in found}:
        group = [d for d in found if d["label"] == label]
        keep += [group[k] for k in nms(np.array([d["box"] for d in group]), np.array([d["score"] for d in group]), iou)]
    return sorted(keep, key=lambda d: -d["score"])


def predict_package_folder(package_dir: str | Path, paths: list[str | Path], out: str | Path,
                           score_threshold: float = 0.3, nms_iou: float = 0.5) -> list[dict]:
    """`pixelforge predict PACKAGE IMAGES --out DIR` for a detection or instance package: the files and result dicts
    of `predict_detection` / `predict_instance` (predictions.json, images.json, annotated PNGs), without torch.

    Instance packages add each object's mask: RLE `segmentation` in the COCO results, its `area`, and the mask
    blended under its box in the picture.
    """
    from PIL import Image

    from pixelforge.data.images import ImageReadError, load_rgb
    from pixelforge.data.sources import collect_paths
    from pixelforge.deploy.dense_detection import DetectionRuntime
    from pixelforge.deploy.draw import blend_instances, draw_boxes

    files = collect_paths([str(p) for p in paths])
    if not files:
        raise PixelforgeError(f"no images found in {', '.join(map(str, paths))}")
    runtime = DetectionRuntime(Path(package_dir), None, None, None, False)
    masks = runtime.task == "instance"
    ids = runtime.package.manifest.get("category_ids") or list(range(1, len(runtime.classes) + 1))
    category_of = dict(zip(runtime.classes, ids))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results, answers, entries, used = [], [], [], set()
    for image_id, path in enumerate(files, start=1):
        try:
            image = load_rgb(path)
        except ImageReadError as exc:
            answers.append({"path": str(path), "detections": None, "error": str(exc)})
            continue
        found = [d for d in runtime.predict_images([image])[0]["detections"] if d["score"] >= score_threshold]
        keep = classwise_nms(found, nms_iou)
        detections = [{"label": d["label"], "category_id": int(category_of[d["label"]]), "score": round(d["score"], 5),
                       "box": [round(v, 2) for v in d["box"]], **({"area": int(d["mask"].sum())} if masks else {})}
                      for d in keep]
        for d, kept in zip(detections, keep):
            x1, y1, x2, y2 = d["box"]
            results.append({"image_id": image_id, "category_id": d["category_id"], "score": d["score"],
                            "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                            **({"segmentation": encode_mask(kept["mask"])} if masks else {})})
        stem = Path(path).stem if Path(path).stem not in used else f"{image_id}_{Path(path).stem}"
        used.add(stem)
        frame = np.ascontiguousarray(np.asarray(image)[..., ::-1])  # OpenCV draws on BGR
        if masks:
            blend_instances(frame, keep, runtime.classes)
        draw_boxes(frame, keep, runtime.classes)
        Image.fromarray(np.ascontiguousarray(frame[..., ::-1])).save(out / f"{stem}.png")
        entries.append({"id": image_id, "file_name": str(path), "width": image.width, "height": image.height})
        listed = ", ".join(f"{d['label']} {d['score']:.2f}" for d in detections)
        answers.append({"path": str(path), "image_id": image_id, "annotated": str(out / f"{stem}.png"),
                        "detections": detections, "summary": f"{len(detections)} object{'s' * (len(detections) != 1)}"
                                                             + (f": {listed}" if listed else "")})
    (out / "predictions.json").write_text(json.dumps(results, indent=2))
    (out / "images.json").write_text(json.dumps(entries, indent=2))
    return answers


def encode_mask(mask: np.ndarray) -> dict:
    """A bool [H, W] mask as COCO compressed RLE with text counts (JSON-ready), without torch."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
