"""What the detection and instance-segmentation exporters share: the detector traced to ONNX, and box parity.

torchvision's detectors trace to ONNX whole (torch.onnx.export, TorchScript-based, opset 17), including their
NMS, so a box package needs no post-processing code of its own beyond scaling boxes back to the original image
(pixelforge.deploy.runtime.detect). The export is refused unless every detection PyTorch makes on the parity
images has an ONNX Runtime twin with the same label, IoU >= 0.99 and a score within 1e-3 (and the other way round).
Both sides get the same preprocessed tensor, so the check isolates the conversion. A detection without a twin is
not a failure when the detector's own rules explain it as a tie the two runtimes broke differently:
- its score is within 1e-3 of the model's score threshold (rounding put it on one side only);
- NMS tie swap ("tie_swaps" in the report): two same-label boxes of near-equal scores (within 1e-3) overlapping by
  at least the detector's NMS IoU threshold suppressed each other, one on each side; and, as greedy NMS would,
  a box one side kept but the other suppressed because that other side kept a tie-swapped (or itself so
  suppressed) same-label box scoring at least as high that overlaps it by the NMS threshold;
- per-image cap ("cap_ties"): one side kept `detections_per_img` boxes, and the box missing there scores at most
  1e-3 above that side's lowest kept score (at or below it, the cap cuts it).
A barely-trained detector makes many low, near-tied, overlapping boxes, so these happen there; a wrong box, a
missing one, or a swap whose scores differ by more than 1e-3 still fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from pixelforge.deploy.export.onnx import export_traced
from pixelforge.deploy.runtime.boxes import box_iou

MATCH_IOU = 0.99
SCORE_TOLERANCE = 1e-3


class Tolerance(NamedTuple):
    """How close two detections must be to be twins: box IoU at least `iou`, scores within `score`."""

    iou: float = MATCH_IOU
    score: float = SCORE_TOLERANCE


# fp16's 11-bit mantissa, rounded again at each of a backbone's ~50 layers, moves a logit by about 1e-2: the scores
# of a trained detector (the docs' shapes Faster R-CNN) then differ by up to 0.016 and twin boxes overlap by 0.977
# at worst, where float32 ONNX Runtime matches PyTorch to 1e-3 and 0.99. Twins within these bounds are the same
# detection to a user.
FP16_TOLERANCE = Tolerance(iou=0.95, score=0.02)
BOX_OUTPUTS = ["boxes", "scores", "labels"]
# Why `--int8` is refused for detect and instance: static QDQ would quantize the box decoding and NMS arithmetic too,
# and nothing of it has been checked.
BOX_TASKS_NO_INT8 = "it offers fp32 ONNX and --fp16 (int8 of a detector is not converted or checked)"
# fp16 of a detector: only the convolutions and linear layers of the backbone, FPN, RPN head and box/mask heads (the
# arithmetic that costs); anchors, box decoding, NMS, RoI pooling and mask pasting stay float32, where fp16's
# 11-bit mantissa would move boxes by pixels at 1000 px and change NMS's tie-breaks.
FP16_PARTS = ("/detector/backbone/", "/detector/rpn/head/", "/detector/roi_heads/box_head/",
              "/detector/roi_heads/box_predictor/", "/detector/roi_heads/mask_head/",
              "/detector/roi_heads/mask_predictor/", "/detector/head/")
FP16_OPS = {"Conv", "ConvTranspose", "Relu", "Add", "MaxPool", "Gemm", "MatMul", "Resize", "Flatten", "Sigmoid"}
# fp16 is refused when a detection the runtime shows clearly (score >= FP16_SHOWN_SCORE, predict's, serve's and
# video's default threshold, plus FP16_BORDERLINE) has no twin within FP16_TOLERANCE (ties explained as for fp32),
# or when its COCO mAP or mAP50 on the parity images' ground truth falls more than FP16_MAX_MAP_DROP (0-1 scale)
# below PyTorch's. Detections near or under the threshold may differ: fp16 rounding reorders near-tied scores, so
# the RPN's top-k and NMS keep other faint boxes. Measured: the docs' shapes Faster R-CNN (mAP50 0.91, 16 epochs),
# on its 60 val images: 431 of PyTorch's 444 detections twinned, 20 NMS tie swaps, 5 lonely ones all under 0.38,
# mAP 0.6210 vs 0.6238, mAP50 0.9130 vs 0.9131; a barely
# trained Mask R-CNN at 64 px, 26 of 200 lonely, all under 0.3, mAP identical.
FP16_SHOWN_SCORE = 0.3
FP16_BORDERLINE = 0.1
FP16_MAX_MAP_DROP = 0.005


def write_detector_fp16(staging: Path) -> Path:
    """model.fp16.onnx: the mixed conversion (FP16_PARTS' FP16_OPS in fp16, the rest float32), listed in
    package.json."""
    from pixelforge.deploy.export.precision import add_model
    from pixelforge.deploy.export.quantize import convert_fp16

    path = convert_fp16(staging / "model.onnx", staging / "model.fp16.onnx",
                        lambda node: node.op_type in FP16_OPS and node.name.startswith(FP16_PARTS))
    add_model(staging, "fp16", path.name, fp16=True, fp16_parts="backbone, FPN, RPN head, RoI heads")
    return path


def check_fp16_boxes(report: dict, extra: str = "", passed: bool = True) -> dict:
    """The fp16 box parity `report` (of `box_parity` with FP16_TOLERANCE) judged (FP16_SHOWN_SCORE + FP16_BORDERLINE,
    FP16_MAX_MAP_DROP, and `passed` for what the caller
    checked, `extra` naming it); refused otherwise."""
    from pixelforge.deploy.export.precision import refuse

    drop = max(report["torch_map"] - report["onnx_map"], report["torch_map50"] - report["onnx_map50"])
    clear = FP16_SHOWN_SCORE + FP16_BORDERLINE
    shown = report["max_unmatched_score"] < clear
    report = {**report, "shown_score": clear, "map_drop": drop, "allowed_map_drop": FP16_MAX_MAP_DROP,
              "passed": shown and drop <= FP16_MAX_MAP_DROP and passed}
    if not report["passed"]:
        refuse("fp16", f"{report['unmatched']} detections without a twin (PyTorch made {report['torch_detections']}, "
               f"the fp16 model {report['onnx_detections']}), the highest scoring {report['max_unmatched_score']:.3f} "
               f"(allowed under {clear:g}); mAP "
               f"{report['onnx_map']:.4f} vs PyTorch's {report['torch_map']:.4f}, allowed drop "
               f"{FP16_MAX_MAP_DROP:g}{extra}", "export without --fp16")
    return report


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


def box_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` with every box in `b`, but 1 for two boxes whose corners agree to 0.01 px.

    A box clipped flat against the image border (zero width or height: common from a barely trained detector) has
    IoU 0 even with itself, so two runtimes giving the very same flat box were judged to differ and export refused.
    """
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    same = np.abs(np.asarray(a, np.float64)[:, None, :] - np.asarray(b, np.float64)[None, :, :]).max(-1) <= 0.01
    return np.where(same, 1.0, box_iou(a, b))


def twin_pairs(expected: tuple, got: tuple, tol: Tolerance = Tolerance()) -> list[tuple[int, int]]:
    """(expected index, got index) one-to-one twins between two (boxes, scores, labels) sets, best expected score
    first: same label, IoU >= tol.iou, |Δscore| <= tol.score, the highest IoU candidate."""
    (eb, es, el), (gb, gs, gl) = expected, got
    iou = box_overlap(eb, gb)
    used, pairs = set(), []
    for i in np.argsort(-es):
        candidates = [j for j in range(len(gb)) if j not in used and gl[j] == el[i] and iou[i, j] >= tol.iou
                      and abs(gs[j] - es[i]) <= tol.score]
        if candidates:
            j = max(candidates, key=lambda k: iou[i, k])
            used.add(j)
            pairs.append((int(i), j))
    return pairs


class BoxMatch(NamedTuple):
    """How two detection sets of one image compare (`match_detections`)."""

    matched: int
    failures: int
    worst_score: float  # max |Δscore| over the twins
    worst_iou: float  # min IoU over the twins
    tie_swaps: int = 0  # lonely detections NMS ties explain
    cap_ties: int = 0  # lonely detections the per-image cap explains
    top_failure_score: float = 0.0  # the highest score of a lonely detection nothing explains


def detector_limits(model) -> tuple[float | None, int | None]:
    """The detector's NMS IoU threshold and detections-per-image cap (R-CNNs keep them on roi_heads; RetinaNet,
    FCOS and SSD on the model), the rules a tie between the runtimes can break differently."""
    heads = getattr(model, "roi_heads", model)
    return getattr(heads, "nms_thresh", None), getattr(heads, "detections_per_img", None)


def match_detections(expected: tuple, got: tuple, floor: float, nms_iou: float | None = None,
                     cap: int | None = None, tol: Tolerance = Tolerance()) -> BoxMatch:
    """Match two (boxes, scores, labels) sets one to one (`twin_pairs`) and judge the detections left lonely.

    A lonely detection is a failure unless it scores within `tol.score` of `floor` (the model's score
    threshold), or NMS with IoU threshold `nms_iou` broke a tie differently (`nms_tie_casualties`), or a side
    holding `cap` detections cut it at a tie (`cap_casualties`); None leaves that rule out.

    Example:
        >>> boxes = np.array([[0, 0, 10, 10], [0, 2, 10, 12]], np.float32)  # IoU 0.67 with each other
        >>> torch_side = (boxes[:1], np.array([0.3], np.float32), np.array([1]))
        >>> onnx_side = (boxes[1:], np.array([0.3], np.float32), np.array([1]))  # the tie broke the other way
        >>> match_detections(torch_side, onnx_side, floor=0.05, nms_iou=0.5)[:2], match_detections(
        ...     torch_side, onnx_side, floor=0.05)[:2]
        ((0, 0), (0, 2))
    """
    sides = (expected, got)
    pairs = twin_pairs(expected, got, tol)
    twinned = ({i for i, _ in pairs}, {j for _, j in pairs})
    lonely = [[i for i in range(len(side[0])) if i not in twinned[s]] for s, side in enumerate(sides)]
    swapped = nms_tie_casualties(sides, lonely, nms_iou, tol.score) if nms_iou is not None else set()
    capped = cap_casualties(sides, lonely, cap, tol.score) - swapped if cap is not None else set()
    failed = [float(sides[s][1][i]) for s in (0, 1) for i in lonely[s]
              if (s, i) not in swapped | capped and sides[s][1][i] >= floor + tol.score]
    (eb, es, _), (gb, gs, _) = sides
    worst_score = max((abs(float(gs[j] - es[i])) for i, j in pairs), default=0.0)
    worst_iou = min((float(box_overlap(eb[i][None], gb[j][None])[0, 0]) for i, j in pairs), default=1.0)
    return BoxMatch(len(pairs), len(failed), worst_score, worst_iou, len(swapped), len(capped), max(failed, default=0.0))


def nms_tie_casualties(sides: tuple, lonely: list[list[int]], nms_iou: float,
                       tolerance: float = SCORE_TOLERANCE) -> set[tuple[int, int]]:
    """(side, index) of the lonely detections NMS ties explain: the swapped pairs, then what they suppressed.

    A pair is one lonely detection from each side with the same label, scores within `tolerance` and IoU >=
    `nms_iou`: each side kept one of two near-tied boxes and suppressed the other. Greedy NMS then also keeps, on one
    side only, a box the other side suppressed with a box it kept alone; so a lonely detection is explained when
    the other side holds an explained lonely detection of its label, scoring at least as high (within the
    tolerance), that overlaps it by `nms_iou`. Explained ones can explain others, until nothing changes.
    """
    found = [[(i, float(side[1][i]), side[2][i]) for i in lonely[s]] for s, side in enumerate(sides)]
    iou = box_iou(sides[0][0][lonely[0]], sides[1][0][lonely[1]]) if lonely[0] and lonely[1] else None
    overlap = {(s, a, b): float(iou[a, b] if s == 0 else iou[b, a]) for s in (0, 1)
               for a in range(len(found[s])) for b in range(len(found[1 - s]))}
    explained: set[tuple[int, int]] = set()
    for a, (i, score, label) in sorted(enumerate(found[0]), key=lambda item: -item[1][1]):
        candidates = [b for b, (j, other_score, other_label) in enumerate(found[1]) if (1, j) not in explained
                      and other_label == label and abs(other_score - score) <= tolerance
                      and overlap[0, a, b] >= nms_iou]
        if candidates:
            b = max(candidates, key=lambda b: overlap[0, a, b])
            explained |= {(0, i), (1, found[1][b][0])}

    def suppressed(s: int, a: int) -> bool:  # the other side kept an explained box that suppresses this one there
        _, score, label = found[s][a]
        return any((1 - s, j) in explained and other_label == label and other_score >= score - tolerance
                   and overlap[s, a, b] >= nms_iou for b, (j, other_score, other_label) in enumerate(found[1 - s]))

    changed = bool(explained)  # a cascade needs a swap to start from
    while changed:
        new = {(s, found[s][a][0]) for s in (0, 1) for a in range(len(found[s]))
               if (s, found[s][a][0]) not in explained and suppressed(s, a)}
        explained |= new
        changed = bool(new)
    return explained


def cap_casualties(sides: tuple, lonely: list[list[int]], cap: int,
                   tolerance: float = SCORE_TOLERANCE) -> set[tuple[int, int]]:
    """(side, index) of lonely detections the other side's per-image cap cut: that side kept `cap` detections and
    this one scores at most `tolerance` above its lowest kept score, so a tie (or a lower score) lost there."""
    cut = set()
    for side in (0, 1):
        other = sides[1 - side]
        if len(other[1]) >= cap:
            lowest = float(other[1].min())
            cut |= {(side, i) for i in lonely[side] if sides[side][1][i] <= lowest + tolerance}
    return cut


def ties_allowed(report: dict) -> str:
    """The refusal message's note of the lonely detections the parity check already put down to ties."""
    cap = report.get("detections_per_img")
    if cap is None:  # a detector without a per-image cap: only NMS ties can explain a lonely box
        return f"{report['tie_swaps']} NMS tie swaps allowed"
    return f"{report['tie_swaps']} NMS tie swaps and {report['cap_ties']} ties at the {cap}-per-image cap allowed"


def box_parity(model, model_path: Path, images: list, size: int, split: str, compare_extra=None,
               score_map: bool = False, tol: Tolerance = Tolerance()) -> dict:
    """PyTorch vs ONNX Runtime on `images`, detection by detection (`match_detections`); with `score_map`, also each
    side's COCO mAP and mAP50 against the images' ground truth (in model-input pixels).

    `compare_extra(torch_output, onnx_outputs, expected, got)`, when given, compares what else the model returns
    (instance masks) and its dict of sums is added up over the images; the caller judges it.
    """
    import onnxruntime as ort
    import torch

    from pixelforge.data.boxes.dataset import BoxDataset
    from pixelforge.data.boxes.transforms import eval_box_transform
    from pixelforge.models.detectors import EVAL_SCORE_THRESH

    nms_iou, cap = detector_limits(model)
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    data = BoxDataset(images, sorted({int(c) for i in images for c in i.labels}), eval_box_transform(size), size)
    data.preload()
    totals = {"torch_detections": 0, "onnx_detections": 0, "matched": 0, "unmatched": 0, "tie_swaps": 0, "cap_ties": 0}
    extra: dict = {}
    worst_score, worst_iou, top_failure = 0.0, 1.0, 0.0
    truth: list[tuple] = []
    sides: list[list[tuple]] = [[], []]
    for index in range(len(data)):
        x, target = data[index]
        x = x.as_subclass(torch.Tensor)
        with torch.no_grad():
            out = model([x])[0]
        outputs = [np.asarray(v) for v in session.run(None, {"image": x.numpy()})]
        expected, got = (out["boxes"].numpy(), out["scores"].numpy(), out["labels"].numpy()), tuple(outputs[:3])
        found = match_detections(expected, got, EVAL_SCORE_THRESH, nms_iou, cap, tol)
        truth.append((tuple(x.shape[-2:]), target["boxes"].as_subclass(torch.Tensor).numpy(), target["labels"].numpy()))
        sides[0].append(expected)
        sides[1].append(got)
        totals["torch_detections"] += len(expected[0])
        totals["onnx_detections"] += len(got[0])
        totals["matched"] += found.matched
        totals["unmatched"] += found.failures
        totals["tie_swaps"] += found.tie_swaps
        totals["cap_ties"] += found.cap_ties
        worst_score, worst_iou = max(worst_score, found.worst_score), min(worst_iou, found.worst_iou)
        top_failure = max(top_failure, found.top_failure_score)
        for key, value in (compare_extra(out, outputs, expected, got, tol) if compare_extra else {}).items():
            extra[key] = min(extra.get(key, value), value) if key.startswith("min_") else extra.get(key, 0) + value
    return {"split": split, "images": len(data), **totals, "max_score_diff": worst_score, "min_matched_iou": worst_iou,
            "max_unmatched_score": top_failure,
            "required_iou": tol.iou, "score_tolerance": tol.score, "nms_iou": nms_iou,
            "detections_per_img": cap, "passed": totals["unmatched"] == 0,
            **extra, **(_maps(truth, sides) if score_map else {})}


def _maps(truth: list[tuple], sides: list[list[tuple]]) -> dict:
    """COCO mAP and mAP50 of PyTorch's ("torch_") and ONNX Runtime's ("onnx_") detections against `truth`."""
    from pixelforge.metrics.coco import coco_metrics

    xywh = lambda b: [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]  # noqa: E731
    labels = sorted({int(label) for _, _, found in truth for label in found} |
                    {int(label) for side in sides for _, _, found in side for label in found})
    gt = {"images": [{"id": i, "height": hw[0], "width": hw[1]} for i, (hw, _, _) in enumerate(truth)],
          "categories": [{"id": label, "name": str(label)} for label in labels],
          "annotations": [{"image_id": i, "category_id": int(label), "bbox": xywh(box)}
                          for i, (_, boxes, found) in enumerate(truth) for box, label in zip(boxes, found)]}
    report = {}
    for name, side in zip(("torch", "onnx"), sides):
        results = [{"image_id": i, "category_id": int(label), "bbox": xywh(box), "score": float(score)}
                   for i, (boxes, scores, found) in enumerate(side) for box, score, label in zip(boxes, scores, found)]
        metrics = coco_metrics(gt, results)
        report.update({f"{name}_map": max(metrics["map"], 0.0), f"{name}_map50": max(metrics["map50"], 0.0)})
    return report
