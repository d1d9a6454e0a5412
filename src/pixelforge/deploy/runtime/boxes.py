"""Box geometry in NumPy for the torch-free path: IoU, greedy NMS, NMS within each class.

The export's parity check (tasks/common/boxes_export.py) matches boxes with the same IoU.
"""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of XYXY boxes a [N, 4] and b [M, 4]."""
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression (indices kept, best first)."""
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
