"""The instance-segmentation runtime: detection's runtime plus a mask per detection (torch-free).

An instance package (tasks/instance/export.py) is a detection package whose model has one more output, "masks"
[N, 1, h, w]: each detection's mask probabilities in input pixels. Each detection then also carries "mask", a bool
[H, W] array at the image's own size (probabilities resized bilinearly, then > 0.5, as tasks/instance/evaluate.py
does). The server answers each mask as COCO RLE; predict writes them into predictions.json and paints them under
the boxes; the video blends them in their box's colour.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pixelforge.deploy.runtime.answers import instance_answer, keep_detections
from pixelforge.deploy.runtime.detect import DetectionRuntime
from pixelforge.deploy.runtime.preprocess import frame_to_image
from pixelforge.errors import PixelforgeError


class InstanceRuntime(DetectionRuntime):
    """An instance-segmentation package ready to predict."""

    task = "instance"
    title = "Instance segmentation"

    def _read_outputs(self, values: list[np.ndarray]) -> dict[str, np.ndarray]:
        out = super()._read_outputs(values)
        masks = dict(zip(self.output_names, values)).get("masks")
        if masks is None:
            raise PixelforgeError(f"{self.package.folder}: an instance package whose model has no 'masks' output; "
                                  f"export the package again")
        out["masks"] = masks.reshape(len(out["scores"]), *masks.shape[-2:])
        return out

    def answer(self, image: Image.Image, output: dict, *, score_threshold: float = 0.3, **options) -> dict:
        width, height = image.size
        return instance_answer(output, width, height, score_threshold)

    def predict_frame(self, frame: np.ndarray, *, score_threshold: float = 0.3, **options) -> dict:
        """Detection's frame prediction plus "instance_masks": the detections scoring at least `score_threshold`
        with their masks, blended under the boxes."""
        height, width = frame.shape[:2]
        result = self.predict_images([frame_to_image(frame)])[0]
        return {"detections": keep_detections(result["detections"], score_threshold, width, height),
                "instance_masks": [d for d in result["detections"] if float(d["score"]) >= score_threshold]}
