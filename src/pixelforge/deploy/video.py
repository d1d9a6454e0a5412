"""`pixelforge video`: frame-by-frame inference on a video file or a webcam, written out with an overlay.

Each frame goes through the package's own preprocessing and the torch-free runtime. The overlay depends on the
package's task: classification writes the top label and its confidence; detection draws each box with its label
and score (those at or above `score_threshold`), and instance segmentation also blends each object's mask in its
box's colour; segmentation blends the class colours of the predicted mask into the frame and names the largest
classes. The running frames per second are shown in every case. Everything is
headless (OpenCV reads and writes files and cameras without a window), so it runs on servers and in CI.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixelforge.deploy.dense_api import keep_detections, summary_text
from pixelforge.deploy.dense_runtime import load_runtime
from pixelforge.deploy.draw import blend_instances, blend_mask, class_fractions, draw_band, draw_boxes
from pixelforge.deploy.preprocess import frame_to_image
from pixelforge.errors import PixelforgeError


@dataclass
class VideoResult:
    out: Path
    frames: int
    seconds: float
    labels: list[str]  # per processed frame: the top label (classify) or the overlay's summary (detect, segment)
    task: str = "classify"

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def open_capture(source: str):
    """A cv2.VideoCapture for a file path, or a webcam when `source` is an integer index such as 0."""
    import cv2

    if source.isdigit():
        capture = cv2.VideoCapture(int(source))
        if not capture.isOpened():
            raise PixelforgeError(f"webcam {source}: no camera at this index (or no access to /dev/video{source}); "
                                  f"check the index, or give a video file")
        return capture
    if not Path(source).is_file():
        raise PixelforgeError(f"{source}: no such video file; give a file path or a webcam index such as 0")
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise PixelforgeError(f"{source}: OpenCV cannot read this video; convert it to H.264/MPEG-4 in .mp4 or .avi")
    return capture


def draw_overlay(frame: np.ndarray, label: str, score: float, fps: float) -> np.ndarray:
    """Draw 'label  score%' and the FPS in a dark band at the top of a BGR frame (in place)."""
    return draw_band(frame, f"{label}  {100 * score:.1f}%", fps)


def predict_frame(runtime, frame: np.ndarray, score_threshold: float) -> tuple[str, dict]:
    """Predict one BGR frame: the band's text and what was found (classify: the top {label, score}; detect:
    {"detections": [...]} in frame pixels; segment: {"mask": HxW class ids, "class_fractions": {...}})."""
    task = getattr(runtime, "task", "classify")
    if task == "classify":
        ranked = runtime.predict_images([frame_to_image(frame)], top_k=1)[0][0]
        return f"{ranked['label']}  {100 * ranked['score']:.1f}%", ranked
    result = runtime.predict_images([frame_to_image(frame)])[0]
    if task in ("detect", "instance"):
        height, width = frame.shape[:2]
        detections = keep_detections(result["detections"], score_threshold, width, height)
        found = {"detections": detections}
        if task == "instance":  # each object's mask, blended under the boxes
            found["instance_masks"] = [d for d in result["detections"] if float(d["score"]) >= score_threshold]
        return summary_text(task, runtime.classes, detections=detections), found
    fractions = class_fractions(result["mask"], runtime.classes)
    text = summary_text(task, runtime.classes, fractions=fractions)
    return text, {"mask": result["mask"], "class_fractions": fractions}


def draw_frame(frame: np.ndarray, classes: list[str], predicted: dict, text: str, fps: float) -> np.ndarray:
    """The overlay, in place: mask colours under the band, boxes over it (a box at the top keeps its label)."""
    if "mask" in predicted:
        blend_mask(frame, predicted["mask"], classes)
    if "instance_masks" in predicted:
        blend_instances(frame, predicted["instance_masks"], classes)
    draw_band(frame, text, fps)
    if "detections" in predicted:
        draw_boxes(frame, predicted["detections"], classes)
    return frame


def run_video(package: str | Path, source: str, out: str | Path, max_frames: int | None = None,
              precision: str | None = None, on_frame=None, score_threshold: float = 0.3,
              runtime=None) -> VideoResult:
    """Predict every frame of `source` (file or webcam index) and write `out` (mp4) with the task's overlay.

    `runtime` (optional) is an already loaded runtime for `package` (`dense_runtime.load_runtime`).

    Example:
        >>> run_video("packages/shapes", "clip.mp4", "clip-labelled.mp4").fps  # doctest: +SKIP
        212.5
    """
    import cv2

    out = Path(out)
    if out.exists():
        raise PixelforgeError(f"{out}: already exists; choose a new --out (videos are never overwritten)")
    runtime = runtime or load_runtime(package, precision)
    task = getattr(runtime, "task", "classify")
    capture = open_capture(str(source))
    fps_in = capture.get(cv2.CAP_PROP_FPS) or 0
    fps_in = fps_in if 1 <= fps_in <= 240 else 25.0
    writer, labels = None, []
    started = time.perf_counter()
    try:
        while max_frames is None or len(labels) < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            if writer is None:
                out.parent.mkdir(parents=True, exist_ok=True)
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps_in,
                                         (frame.shape[1], frame.shape[0]))
            text, predicted = predict_frame(runtime, frame, score_threshold)
            labels.append(predicted["label"] if task == "classify" else text)
            fps = len(labels) / max(time.perf_counter() - started, 1e-9)
            writer.write(draw_frame(frame, runtime.classes, predicted, text, fps))
            if on_frame is not None:
                on_frame(len(labels), predicted, fps)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if not labels:
        raise PixelforgeError(f"{source}: no frames could be read; is it an empty or unsupported video?")
    return VideoResult(out, len(labels), time.perf_counter() - started, labels, task)
