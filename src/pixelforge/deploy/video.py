"""`pixelforge video`: frame-by-frame inference on a video file or a webcam, written out with an overlay.

Each frame goes through the package's own preprocessing and the torch-free runtime; the overlay shows the top
label, its confidence and the running frames per second. Everything is headless (OpenCV reads and writes files
and cameras without a window), so it runs on servers and in CI. Detection boxes and masks will be drawn here
when those tasks exist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixelforge.deploy.preprocess import frame_to_image
from pixelforge.deploy.runtime import Runtime
from pixelforge.errors import PixelforgeError


@dataclass
class VideoResult:
    out: Path
    frames: int
    seconds: float
    labels: list[str]  # top label per processed frame

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
    import cv2

    height, width = frame.shape[:2]
    scale = max(0.5, width / 900)
    thickness = max(1, int(round(scale * 2)))
    band = int(36 * scale)
    frame[:band] = (frame[:band] * 0.35).astype(frame.dtype)
    cv2.putText(frame, f"{label}  {100 * score:.1f}%", (int(10 * scale), int(band * 0.72)), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (255, 255, 255), thickness, cv2.LINE_AA)
    text = f"{fps:.1f} FPS"
    (text_width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale * 0.8, thickness)
    cv2.putText(frame, text, (width - text_width - int(10 * scale), int(band * 0.72)), cv2.FONT_HERSHEY_SIMPLEX,
                scale * 0.8, (120, 230, 120), thickness, cv2.LINE_AA)
    return frame


def run_video(package: str | Path, source: str, out: str | Path, max_frames: int | None = None,
              precision: str | None = None, on_frame=None) -> VideoResult:
    """Classify every frame of `source` (file or webcam index) and write `out` (mp4) with the overlay.

    Example:
        >>> run_video("packages/shapes", "clip.mp4", "clip-labelled.mp4").fps  # doctest: +SKIP
        212.5
    """
    import cv2

    out = Path(out)
    if out.exists():
        raise PixelforgeError(f"{out}: already exists; choose a new --out (videos are never overwritten)")
    runtime = Runtime(package, precision)
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
            ranked = runtime.predict_images([frame_to_image(frame)], top_k=1)[0][0]
            labels.append(ranked["label"])
            fps = len(labels) / max(time.perf_counter() - started, 1e-9)
            writer.write(draw_overlay(frame, ranked["label"], ranked["score"], fps))
            if on_frame is not None:
                on_frame(len(labels), ranked, fps)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if not labels:
        raise PixelforgeError(f"{source}: no frames could be read; is it an empty or unsupported video?")
    return VideoResult(out, len(labels), time.perf_counter() - started, labels)
