"""What the detection and instance-segmentation exporters share: the detector traced to ONNX, and box parity.

torchvision's detectors trace to ONNX whole (torch.onnx.export, TorchScript-based, opset 17), including their
NMS, so a box package needs no post-processing code of its own beyond scaling boxes back to the original image
(pixelforge.deploy.runtime.detect). The export is refused unless every detection PyTorch makes on the parity
images has an ONNX Runtime twin with the same label, IoU >= 0.99 and a score within 1e-3 (and the other way round);
detections within 1e-3 of the model's score threshold may appear on one side only. Both sides get the same
preprocessed tensor, so the check isolates the conversion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.deploy.export.onnx import export_traced
from pixelforge.deploy.runtime.boxes import box_iou

MATCH_IOU = 0.99
SCORE_TOLERANCE = 1e-3
BOX_OUTPUTS = ["boxes", "scores", "labels"]


def write_detector_onnx(model, path: Path, size: int, opset: int, outputs: list[str] = BOX_OUTPUTS) -> Path:
    """The detector as one image tensor [3, H, W] in (H, W dynamic), its `outputs` (per detection, dynamic count)
    out; a "masks" output [N, 1, H, W] also has dynamic height and width."""
    import torch

    class SingleImage(torch.nn.Module):  # torchvision's detectors take a list of images and answer a list of dicts
        def __init__(self, detector):
            super().__init__()
            self.detector = detector

        def forward(self, image):
            found = self.detector([image])[0]
            return tuple(found[name] for name in outputs)

    axes = {"image": {1: "height", 2: "width"}, **{name: {0: "detections"} for name in outputs}}
    if "masks" in axes:
        axes["masks"].update({2: "height", 3: "width"})
    example = torch.rand(3, size, int(size * 0.75))
    return export_traced(SingleImage(model).eval(), (example,), path, ["image"], outputs, opset, axes)


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
