"""`pixelforge video` on detection and segmentation packages: boxes and mask colours are drawn on every frame."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.deploy.conftest import write_detection_package, write_fake_detection_package, write_segmentation_package
from tests.deploy.test_server_dense import FakeDetector

cv2 = pytest.importorskip("cv2")

SIZE = (128, 96)  # width, height
SQUARE = (40, 36, 88, 76)  # x1, y1, x2, y2 of the red square in every frame


def _write_clip(path, frames=8):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, SIZE)
    x1, y1, x2, y2 = SQUARE
    for _ in range(frames):
        frame = np.full((SIZE[1], SIZE[0], 3), 128, np.uint8)
        frame[y1:y2, x1:x2] = (20, 20, 230)  # BGR: red
        writer.write(frame)
    writer.release()
    return path


def _frames(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame.astype(np.int16))
    capture.release()
    return frames


def test_segmentation_video_cli_blends_the_mask_where_the_object_is(cli, tmp_path):
    package = write_segmentation_package(tmp_path / "seg")
    clip = _write_clip(tmp_path / "clip.mp4")
    out = tmp_path / "masked.mp4"
    result = cli("video", package, clip, "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 8
    before, after = _frames(clip), _frames(out)
    assert len(after) == 8 and after[0].shape[:2] == (SIZE[1], SIZE[0])
    x1, y1, x2, y2 = SQUARE
    inner = (slice(y1 + 4, y2 - 4), slice(x1 + 4, x2 - 4))
    change = np.abs(after[3] - before[3])
    assert change[inner][..., 2].mean() > 35  # red (230) blended half-way with the "blob" colour (VOC's 128, 0, 0)
    outside = change[40:, :30]  # grey background, below the text band: background is left unpainted
    assert outside.mean() < 6


def test_detection_video_draws_each_box(tmp_path):
    from pixelforge.deploy.video import run_video

    package = write_fake_detection_package(tmp_path / "det")
    clip = _write_clip(tmp_path / "clip.mp4", frames=5)
    runtime = FakeDetector(package)
    result = run_video(package, str(clip), tmp_path / "boxes.mp4", runtime=runtime, max_frames=4)
    assert result.task == "detect" and result.frames == 4 and runtime.calls == 4
    assert result.labels[0] == "2 found, best circle 90%"  # the 0.1-score box is under the default threshold
    before, after = _frames(clip), _frames(tmp_path / "boxes.mp4")
    # FakeDetector's circle box: [0.1 w, 0.2 h, 0.6 w, 0.7 h] = x 12.8..76.8, y 19.2..67.2 in this 128x96 clip
    left_edge = (slice(40, 60), slice(12, 14))
    assert np.abs(after[1] - before[1])[left_edge].mean() > 40
    untouched = (slice(80, 96), slice(100, 128))  # below both boxes, right of them
    assert np.abs(after[1] - before[1])[untouched].mean() < 6


def test_detection_boxes_respect_the_score_threshold(tmp_path):
    from pixelforge.deploy.video import run_video

    package = write_fake_detection_package(tmp_path / "det")
    clip = _write_clip(tmp_path / "clip.mp4", frames=2)
    result = run_video(package, str(clip), tmp_path / "a.mp4", runtime=FakeDetector(package), score_threshold=0.05)
    assert result.labels[0].startswith("3 found")
    result = run_video(package, str(clip), tmp_path / "b.mp4", runtime=FakeDetector(package), score_threshold=0.95)
    assert result.labels[0] == "nothing found"


def test_detection_video_cli_draws_the_onnx_packages_boxes(cli, tmp_path):
    package = write_detection_package(tmp_path / "det")  # circle [4, 2, 12, 10] at 0.8 in 32-px model pixels
    clip = _write_clip(tmp_path / "clip.mp4", frames=3)
    out = tmp_path / "boxes.mp4"
    result = cli("video", package, clip, "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    before, after = _frames(clip), _frames(out)
    assert len(after) == 3
    # the 128 x 96 clip is fed as 32 x 24 (4x smaller): the circle box is [16, 8, 48, 40] in frame pixels
    assert np.abs(after[1] - before[1])[20:36, 14:19].max(axis=(1, 2)).min() > 60  # its left edge, on every row
    assert np.abs(after[1] - before[1])[50:90, 100:128].mean() < 6  # far from it
