"""`pixelforge video`: frame-by-frame inference on a video file or a webcam, written out with an overlay.

Each frame goes through the package's own preprocessing and the torch-free runtime, whose task decides the
overlay (`TaskRuntime.predict_frame`, `describe`, `draw`): classification writes the top label and its confidence;
detection draws each box with its label and score (those at or above `score_threshold`), and instance segmentation
also blends each object's mask in its box's colour; segmentation blends the class colours of the predicted mask into
the frame and names the largest classes. The running frames per second are shown in every case. Everything is
headless (OpenCV reads and writes files and cameras without a window), so it runs on servers and in CI.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pixelforge.deploy.export.torchscript import TORCH_LOADERS
from pixelforge.deploy.runtime.registry import load_runtime
from pixelforge.deploy.video_probe import mp4_tracks, no_frame_reason
from pixelforge.errors import PixelforgeError


@dataclass
class VideoResult:
    out: Path
    frames: int
    seconds: float
    labels: list[str]  # per processed frame: `runtime.label` (classify: the top label; others: the overlay's text)
    task: str = "classify"
    summary: dict | None = None  # the runtime's own video measures (style: flicker)
    note: str = ""  # what the user should know about the written file (odd frame size padded; sound left out)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# What each --out suffix is written as. OpenCV's FFmpeg writer (MPEG-4, "mp4v") cuts an odd width or height down to
# even (cap_ffmpeg_impl.hpp), so `open_writer` gives it frames one copied column or row larger instead; OpenCV's own
# Motion-JPEG writer (.avi) keeps any size. Other suffixes (.webm, .ts...) OpenCV refuses, or writes as a file it
# cannot read back.
WRITERS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


def check_out(out: Path) -> None:
    """One line for an `--out` no video can be written to, before a run is exported or a frame is read."""
    if out.is_dir():
        raise PixelforgeError(f"{out}: is a folder; give --out a video file name such as {out / 'video.mp4'}")
    if out.exists():
        raise PixelforgeError(f"{out}: already exists; choose a new --out (videos are never overwritten)")
    if out.suffix.lower() not in WRITERS:
        names = ", ".join(list(WRITERS)[:-1]) + " or " + list(WRITERS)[-1]
        raise PixelforgeError(f"{out}: cannot write a video of this name; give --out a {names} file name")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise PixelforgeError(f"{out}: {blocker} is a file, not a folder; choose an --out in a folder")


def open_writer(out: Path, fps: float, width: int, height: int):
    """(an open cv2.VideoWriter for `out`, the columns and rows to add on the right and at the bottom of each frame:
    1 for an odd width or height given to FFmpeg's writer, which would cut it off)."""
    import cv2

    fourcc = WRITERS[out.suffix.lower()]
    own_mjpeg = fourcc == "MJPG"
    right, bottom = (0, 0) if own_mjpeg else (width % 2, height % 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.CAP_OPENCV_MJPEG if own_mjpeg else cv2.CAP_FFMPEG,
                             cv2.VideoWriter_fourcc(*fourcc), fps, (width + right, height + bottom))
    if not writer.isOpened():
        raise PixelforgeError(f"{out}: OpenCV cannot open this file for writing; check the folder's permissions "
                              f"and free space")
    return writer, right, bottom


def padding_note(out: Path, width: int, height: int, right: int, bottom: int) -> str:
    """What the summary says when frames were padded to an even size ("" when they were not)."""
    if not (right or bottom):
        return ""
    added = " and ".join(name for name, n in (("column", right), ("row", bottom)) if n)
    return (f"the {width}x{height} frames are written as {width + right}x{height + bottom}, their last {added} "
            f"repeated (MPEG-4 needs an even width and height); --out {out.with_suffix('.avi').name} keeps "
            f"{width}x{height}")


CANNOT_READ = "OpenCV cannot read this video; convert it to H.264/MPEG-4 in .mp4 or .avi"


def sound_note(source: Path, out: Path) -> str:
    """What to say when `source` has sound (MP4/MOV files, whose boxes tell): OpenCV writes pictures only."""
    try:
        found = mp4_tracks(source) if source.is_file() else None
    except OSError:
        return ""
    if found is None or not any(track.handler == "soun" for track in found[2]):
        return ""
    return (f"{out} has no sound: OpenCV writes the pictures only (to put {source.name}'s sound back: "
            f"ffmpeg -i {out} -i {source} -map 0:v -map 1:a -c copy WITH-SOUND{out.suffix})")


@contextmanager
def quiet_opencv():
    """Keep OpenCV's and FFmpeg's own log lines ("can't open camera by index", "moov atom not found") off stderr: the
    error raised here says in one line what they meant. A user's OPENCV_FFMPEG_LOGLEVEL still wins."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when OpenCV first starts FFmpeg
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def still_image_format(path: Path) -> str | None:
    """The format of a picture of one frame at `path` ('PNG', 'JPEG'...), or None for anything else (a video, an
    animated GIF, which OpenCV reads frame by frame)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return None if getattr(image, "n_frames", 1) > 1 or image.format == "MPEG" else image.format
    except Exception:  # noqa: BLE001 - whatever PIL cannot open is left to OpenCV
        return None


def open_capture(source: str):
    """A cv2.VideoCapture for a file path, or a webcam when `source` is an integer index such as 0."""
    import cv2

    if source.isdigit():
        with quiet_opencv():
            capture = cv2.VideoCapture(int(source))
        if not capture.isOpened():
            raise PixelforgeError(f"webcam {source}: no camera at this index (or no access to /dev/video{source}); "
                                  f"check the index, or give a video file")
        return capture
    path = Path(source)
    if path.is_dir():
        raise PixelforgeError(f"{source}: is a folder, not a video file (`pixelforge predict` takes folders of images)")
    if not path.is_file():
        raise PixelforgeError(f"{source}: no such video file; give a file path or a webcam index such as 0")
    image_format = still_image_format(path)
    if image_format:
        raise PixelforgeError(f"{source}: is a still image ({image_format}), not a video; `pixelforge predict` "
                              f"predicts images")
    with quiet_opencv():
        capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise PixelforgeError(f"{source}: {no_frame_reason(path) or CANNOT_READ}")
    return capture


def no_frames_error(source: str, frame_count: float) -> PixelforgeError:
    """The error for an opened `source` whose first frame could not be read (`frame_count`: what OpenCV reported)."""
    if source.isdigit():
        return PixelforgeError(f"webcam {source}: gave no frame; check that no other program is using it")
    reason = no_frame_reason(Path(source))
    if reason is None:
        reason = "the file has no video frames" if frame_count == 0 else CANNOT_READ
    return PixelforgeError(f"{source}: {reason}")


def run_video(package: str | Path, source: str, out: str | Path, max_frames: int | None = None,
              precision: str | None = None, on_frame=None, score_threshold: float = 0.3,
              runtime=None, blend: float = 0.0) -> VideoResult:
    """Predict every frame of `source` (file or webcam index) and write `out` (a `WRITERS` suffix) with the task's
    overlay, at the frames' own size (.avi), or with an odd width or height padded to even (`VideoResult.note`).

    `runtime` (optional) is an already loaded runtime for `package` (`pixelforge.deploy.runtime.load_runtime`).
    `blend` (style packages): weight of the previous output on pixels whose input did not change (less flicker).

    Example:
        >>> run_video("packages/shapes", "clip.mp4", "clip-labelled.mp4").fps  # doctest: +SKIP
        212.5
    """
    import cv2

    out = Path(out)
    check_out(out)
    runtime = runtime or load_runtime(package, precision, loaders=TORCH_LOADERS)
    capture = open_capture(str(source))
    fps_in, frame_count = capture.get(cv2.CAP_PROP_FPS) or 0, capture.get(cv2.CAP_PROP_FRAME_COUNT)
    fps_in = fps_in if 1 <= fps_in <= 240 else 25.0
    writer, labels, note = None, [], ""
    started = time.perf_counter()
    try:
        while max_frames is None or len(labels) < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            predicted = runtime.predict_frame(frame, score_threshold=score_threshold, blend=blend)
            text = runtime.describe(predicted)
            labels.append(runtime.label(predicted))
            if writer is None:  # after the first prediction: a package that refuses frames leaves no file behind
                writer, right, bottom = open_writer(out, fps_in, frame.shape[1], frame.shape[0])
                note = padding_note(out, frame.shape[1], frame.shape[0], right, bottom)
            fps = len(labels) / max(time.perf_counter() - started, 1e-9)
            drawn = runtime.draw(frame, predicted, text, fps)
            writer.write(cv2.copyMakeBorder(drawn, 0, bottom, 0, right, cv2.BORDER_REPLICATE) if note else drawn)
            if on_frame is not None:
                on_frame(len(labels), predicted, fps)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if not labels:
        raise no_frames_error(str(source), frame_count)
    notes = [note, sound_note(Path(source), out)]
    return VideoResult(out, len(labels), time.perf_counter() - started, labels, runtime.task, runtime.video_summary(),
                       "; ".join(n for n in notes if n))
