"""The detection runtime: ONNX Runtime in, boxes in the image's own pixels out (torch-free).

The detectors (models/detectors.py) take one float image [3, H, W] in [0, 1] whose longest side is the run's
`img_size` (the detector's own transform normalises inside the graph) and answer {boxes, scores, labels} in those
input pixels, labels 1..K for classes[0..K-1]. So a frame or an upload is resized (bicubic, aspect kept) so its
longest side is the package's size, run through the session, and the boxes are scaled back to the original image.

Outputs are found by name (boxes, scores, labels) or, failing that, by kind: the [N, 4] array is the boxes,
the integer one the labels, the remaining float one the scores. The instance runtime (instance.py) is this one
plus a mask per detection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pixelforge.deploy.runtime.answers import boxes_summary, detection_answer, keep_detections
from pixelforge.deploy.runtime.dense import DenseRuntime, as_array
from pixelforge.deploy.runtime.draw import box_color
from pixelforge.deploy.runtime.preprocess import frame_to_image
from pixelforge.errors import PixelforgeError

SIZE_KEYS = ("img_size", "max_size", "size", "longest_side")


def input_size(pre: dict, folder) -> int:
    """The longest image side the exported detector expects, from preprocess.json."""
    for key in SIZE_KEYS:
        value = pre.get(key)
        if isinstance(value, (list, tuple)) and value:
            value = max(value)
        if isinstance(value, (int, float)) and value > 0:
            return int(value)
    raise PixelforgeError(f"{folder}/preprocess.json: no input size ({' / '.join(SIZE_KEYS)}); export the package again")


def resize_longest(array: np.ndarray, size: int) -> np.ndarray:
    """An HxWx3 uint8 image resized (bicubic, aspect kept) so its longest side is `size`, as float [3, h, w] in [0, 1].

    Bicubic with reducing_gap=3, like training's decoding (data/boxes/dataset.py), so served scores equal `predict`'s.
    """
    height, width = array.shape[:2]
    scale = size / max(height, width)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(np.ascontiguousarray(array[..., :3] if array.shape[-1] >= 3 else np.repeat(array, 3, -1)))
    if new != (width, height):
        image = image.resize(new, Image.BICUBIC, reducing_gap=3.0)
    return np.ascontiguousarray(np.asarray(image, np.float32).transpose(2, 0, 1) / np.float32(255.0))


def mask_at_size(probabilities: np.ndarray, height: int, width: int) -> np.ndarray:
    """One mask's probabilities [h, w] resized (bilinear, half-pixel centres like torch's F.interpolate with
    align_corners=False) to [height, width], then thresholded at 0.5: bool."""
    import cv2

    resized = cv2.resize(np.ascontiguousarray(probabilities, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return resized > 0.5


class DetectionRuntime(DenseRuntime):
    """A detection package ready to predict (see the module docstring for the model's contract)."""

    task = "detect"
    output_key = "annotated"
    title = "Object detection"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.size = input_size(self.package.preprocess, self.package.folder)
        inputs = self.session.get_inputs()
        self.input_name, self.batched = inputs[0].name, len(inputs[0].shape) == 4
        self.output_names = [o.name for o in self.session.get_outputs()]

    def colors(self) -> dict[str, str]:
        return {name: box_color(i) for i, name in enumerate(self.classes)}

    def _outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        values = [np.asarray(v) for v in self.session.run(None, {self.input_name: x[None] if self.batched else x})]
        return self._read_outputs(values)

    def _read_outputs(self, values: list[np.ndarray]) -> dict[str, np.ndarray]:
        """{boxes [N, 4] float32, scores [N], labels [N]} from the session's outputs."""
        named = dict(zip(self.output_names, values))
        if not {"boxes", "scores", "labels"} <= set(named):
            named = {}
            for value in values:
                kind = "boxes" if value.shape[-1:] == (4,) and value.ndim >= 2 else (
                    "labels" if np.issubdtype(value.dtype, np.integer) else "scores")
                named.setdefault(kind, value)
            if set(named) != {"boxes", "scores", "labels"}:
                raise PixelforgeError(f"{self.package.folder}: the model's outputs {self.output_names} are not "
                                      f"boxes, scores and labels; export the package again")
        return {"boxes": named["boxes"].reshape(-1, 4).astype(np.float32), "scores": named["scores"].reshape(-1),
                "labels": named["labels"].reshape(-1)}

    def predict_images(self, images: list) -> list[dict]:
        results = []
        for image in images:  # images differ in size: one model call each
            array = as_array(image)
            height, width = array.shape[:2]
            x = resize_longest(array, self.size)
            out = self._outputs(x)
            sx, sy = width / x.shape[2], height / x.shape[1]
            boxes = out["boxes"] * np.asarray([sx, sy, sx, sy], np.float32)
            detections = []
            for k, (box, score, label) in enumerate(zip(boxes, out["scores"], out["labels"])):
                index = int(label) - 1  # label 0 is the background slot
                if 0 <= index < len(self.classes):
                    detections.append({"box": [float(v) for v in box], "score": float(score),
                                       "label": self.classes[index]})
                    if "masks" in out:
                        detections[-1]["mask"] = mask_at_size(out["masks"][k], height, width)
            results.append({"detections": sorted(detections, key=lambda d: -d["score"])})
        return results

    def predict_files(self, paths: list, out: str | Path | None = None, *, score_threshold: float = 0.3,
                      nms_iou: float = 0.5, progress=None, **options) -> list[dict]:
        """predictions.json (COCO results), images.json and an annotated PNG per image in `out`, as
        `predict_detection` writes them from a run; see box_files.py."""
        from pixelforge.deploy.runtime.box_files import predict_box_files

        self.reject_options("predict", options)
        return self.with_common_keys(predict_box_files(self, paths, self.output_folder(out), score_threshold,
                                                       nms_iou, progress))

    # ---- serving and video --------------------------------------------------------------------------------------
    def answer(self, image: Image.Image, output: dict, *, score_threshold: float = 0.3, **options) -> dict:
        width, height = image.size
        return detection_answer(output, width, height, score_threshold)

    def predict_frame(self, frame: np.ndarray, *, score_threshold: float = 0.3, **options) -> dict:
        """{"detections": [...]} scoring at least `score_threshold`, in frame pixels, clipped, best first."""
        height, width = frame.shape[:2]
        result = self.predict_images([frame_to_image(frame)])[0]
        return {"detections": keep_detections(result["detections"], score_threshold, width, height)}

    def describe(self, prediction: dict) -> str:
        return boxes_summary(prediction["detections"])

