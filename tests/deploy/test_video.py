"""`pixelforge video`: a clip the test writes itself, labelled frame by frame, headless."""

from __future__ import annotations

import json

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")


def _write_clip(path, frames=12, size=(96, 64)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 255, np.uint8)
        cv2.circle(frame, (20 + 4 * i, size[1] // 2), 14, (30, 30, 200), -1)
        writer.write(frame)
    writer.release()
    return path


def test_video_cli_writes_every_frame_with_an_overlay(cli, tiny_package, tmp_path):
    clip = _write_clip(tmp_path / "clip.mp4")
    out = tmp_path / "labelled.mp4"
    result = cli("video", tiny_package, clip, "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["frames"] == 12 and summary["fps"] > 0
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape[:2] == (64, 96)
    assert frame[:8].mean() < 140  # the dark overlay band with the label is drawn on top


def test_video_run_returns_labels_and_refuses_to_overwrite(tiny_package, tmp_path):
    from pixelforge.deploy.video import run_video
    from pixelforge.errors import PixelforgeError

    clip = _write_clip(tmp_path / "clip.mp4", frames=6)
    result = run_video(tiny_package, str(clip), tmp_path / "out.mp4", max_frames=4)
    assert result.frames == 4 and set(result.labels) <= {"circle", "square", "star", "triangle"}
    with pytest.raises(PixelforgeError, match="already exists"):
        run_video(tiny_package, str(clip), tmp_path / "out.mp4")
    with pytest.raises(PixelforgeError, match="no such video"):
        run_video(tiny_package, str(tmp_path / "missing.mp4"), tmp_path / "x.mp4")


def test_video_of_a_classification_run_exports_it_first(cli, tiny_run, tmp_path):
    """A run folder is exported to a scratch package first (was a TypeError traceback: classify's export answers an
    ExportResult, not a folder); an existing --out is refused before that export."""
    clip = _write_clip(tmp_path / "clip.mp4", frames=3)
    result = cli("video", tiny_run, clip, "--out", tmp_path / "labelled.mp4", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 3
    taken = cli("video", tiny_run, clip, "--out", tmp_path / "labelled.mp4")
    assert taken.returncode == 2 and taken.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'labelled.mp4'}: already exists; choose a new --out (videos are never overwritten)"]


def test_video_of_a_run_names_the_run_in_errors_not_its_scratch_package(cli, tiny_run, tmp_path):
    """An error about the package exported from a run named that package's temporary folder, gone when it was read
    (as did a GAN or CLIP run's refusal, whose advice then pointed at it)."""
    clip = _write_clip(tmp_path / "clip.mp4", frames=2)
    result = cli("video", tiny_run, clip, "--out", tmp_path / "labelled.mp4", "--precision", "fp16")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {tiny_run}: no fp16 model in this package (it has fp32); choose --precision fp32, or "
        f"export again with --fp16"]


@pytest.mark.parametrize("name", ["labelled", "labelled.txt", "labelled.ts", "labelled.webm"])
def test_video_out_that_opencv_cannot_write_is_one_line(cli, tiny_package, tmp_path, name):
    """OpenCV picks the container from the suffix: for some it wrote nothing ('N frames' and no file) after its own
    warnings, for .ts a file it cannot read back; the suffix is checked before the package is loaded."""
    clip = _write_clip(tmp_path / "clip.mp4", frames=2)
    result = cli("video", tiny_package, clip, "--out", tmp_path / name)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {tmp_path / name}: cannot write a video of this name; give --out a .mp4, .m4v, .mov, .mkv or .avi "
        f"file name"]
    assert not (tmp_path / name).exists()


def test_video_out_that_is_a_folder_or_inside_a_file_is_one_line(cli, tiny_package, tmp_path):
    """An --out inside a file was a FileExistsError traceback; a folder was 'already exists'."""
    clip = _write_clip(tmp_path / "clip.mp4", frames=2)
    inside = cli("video", tiny_package, clip, "--out", clip / "labelled.mp4")
    assert inside.returncode == 2 and inside.stderr.strip().splitlines() == [
        f"error: {clip / 'labelled.mp4'}: {clip} is a file, not a folder; choose an --out in a folder"]
    folder = cli("video", tiny_package, clip, "--out", tmp_path)
    assert folder.returncode == 2 and folder.stderr.strip().splitlines() == [
        f"error: {tmp_path}: is a folder; give --out a video file name such as {tmp_path / 'video.mp4'}"]


def _write_odd_clip(path, frames=3, size=(33, 25)):
    """An AVI by OpenCV's own Motion-JPEG writer, which keeps an odd size (its FFmpeg writer cuts it to 32x24)."""
    writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(frames):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[:, -1] = frame[-1, :] = (40 * i, 200, 255)  # the last column and row: what a cut would lose
        writer.write(frame)
    writer.release()
    return path


def _read(path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while (frame := capture.read())[0]:
        frames.append(frame[1])
    capture.release()
    return frames


def test_an_odd_frame_size_is_kept_in_avi_and_padded_with_a_note_in_mp4(cli, tiny_package, tmp_path):
    """OpenCV's FFmpeg writer cut a 33x25 video to 32x24 (losing its last column and row), in .avi too."""
    from pixelforge.deploy.video import run_video

    clip = _write_odd_clip(tmp_path / "odd.avi")
    assert _read(clip)[0].shape[:2] == (25, 33)
    kept = run_video(tiny_package, str(clip), tmp_path / "kept.avi")
    frames = _read(tmp_path / "kept.avi")
    assert len(frames) == 3 and frames[0].shape[:2] == (25, 33) and kept.note == ""
    assert frames[1][-1, 10:].mean(axis=0)[1:].min() > 150  # the last row arrived (green and red high)

    result = cli("video", tiny_package, clip, "--out", tmp_path / "padded.mp4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == ("note: the 33x25 frames are written as 34x26, their last column and row "
                                              "repeated (MPEG-4 needs an even width and height); --out padded.avi "
                                              "keeps 33x25")
    frames = _read(tmp_path / "padded.mp4")
    assert len(frames) == 3 and frames[0].shape[:2] == (26, 34)
    last_two_columns = frames[1][12:, -2:].astype(int)
    assert last_two_columns[..., 2].mean() > 150 and np.abs(last_two_columns[:, 0] - last_two_columns[:, 1]).mean() < 12
