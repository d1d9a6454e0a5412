"""`pixelforge video` on the inputs a user meets besides a plain clip: files with no frames, cut short, sound only,
a still image, a folder. Every clip is written by the test itself (OpenCV), 32x24 and a few frames."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tests.deploy.conftest import write_gan_package, write_segmentation_package

cv2 = pytest.importorskip("cv2")


def write_mp4(path, frames=3, size=(32, 24)):
    """An MP4 by OpenCV's FFmpeg writer (MPEG-4 in 'mdat', then the 'moov' index). With `frames=0` it is what a
    writer closed before its first frame leaves: a valid MP4 with no track."""
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 60 + 40 * i, np.uint8))
    writer.release()
    return path


def edit_box(path, box: bytes, offset: int, value: bytes):
    """Overwrite `value` at `offset` bytes past the type of the first `box` in the file."""
    data = bytearray(path.read_bytes())
    at = data.index(box) + 4 + offset
    data[at:at + len(value)] = value
    path.write_bytes(bytes(data))
    return path


def _read(path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while (frame := capture.read())[0]:
        frames.append(frame[1])
    capture.release()
    return frames


@pytest.fixture()
def package(tmp_path):
    return write_segmentation_package(tmp_path / "seg")


def _no_frames_cases(tmp_path) -> dict:
    avi = cv2.VideoWriter(str(tmp_path / "empty.avi"), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), 10,
                          (32, 24))
    avi.release()
    cut = write_mp4(tmp_path / "whole.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(cut[:cut.index(b"moov") - 4])  # stopped before the index was written
    (tmp_path / "cut-in-index.mp4").write_bytes(cut[:cut.index(b"trak") + 40])  # stopped while it was written
    for name in ("zero.mp4", "zero.mkv", "zero.webm"):  # a failed download: was "convert it to H.264/MPEG-4"
        (tmp_path / name).write_bytes(b"")
    return {
        **{tmp_path / name: "the file is empty (0 bytes)" for name in ("zero.mp4", "zero.mkv", "zero.webm")},
        write_mp4(tmp_path / "none.mp4", frames=0): "the file has no video frames (an MP4 with no video track)",
        # the track's handler says sound: what the reader finds in an audio-only .mp4 (.m4a)
        edit_box(write_mp4(tmp_path / "sound.mp4"), b"hdlr", 8, b"soun"):
            "the file has no video frames (an MP4 with sound only)",
        edit_box(write_mp4(tmp_path / "track.mp4"), b"stsz", 8, b"\0\0\0\0"):  # a video track of 0 samples
            "the file has no video frames (an MP4 with an empty video track)",
        tmp_path / "empty.avi": "the file has no video frames",
        **{tmp_path / name: "the MP4 is cut short: its 'moov' index is missing or incomplete (a recording stopped "
                            "before it was closed, or a copy not finished), so no frame can be read from it"
           for name in ("cut.mp4", "cut-in-index.mp4")},
    }


def test_a_video_without_frames_says_so_naming_the_file(package, tmp_path):
    """Each was "OpenCV cannot read this video; convert it..." (the MP4s) or "no frames could be read; is it an empty
    or unsupported video?" (the AVI, the empty track); none writes an output."""
    from pixelforge.deploy.video import run_video
    from pixelforge.errors import PixelforgeError

    for clip, reason in _no_frames_cases(tmp_path).items():
        with pytest.raises(PixelforgeError) as raised:
            run_video(package, str(clip), tmp_path / f"{clip.stem}-out.mp4")
        assert str(raised.value) == f"{clip}: {reason}"
        assert not (tmp_path / f"{clip.stem}-out.mp4").exists()


def test_a_video_without_frames_is_one_line_in_the_cli(cli, package, tmp_path):
    clip = write_mp4(tmp_path / "none.mp4", frames=0)
    result = cli("video", package, clip, "--out", tmp_path / "out.mp4")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {clip}: the file has no video frames (an MP4 with no video track)"]



def test_a_gan_package_is_one_line_and_leaves_no_file(cli, tmp_path):
    """Was a NotImplementedError traceback, after an empty out.mp4 was written (which a second try called taken)."""
    package = write_gan_package(tmp_path / "gan")
    result = cli("video", package, write_mp4(tmp_path / "clip.mp4"), "--out", tmp_path / "out.mp4")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {package}: a GAN package generates images, it takes no video: `pixelforge generate {package} --out "
        f"DIR`"]
    assert not (tmp_path / "out.mp4").exists()


def test_a_clip_package_is_one_line_and_leaves_no_file(tmp_path):
    """docs/zero-shot.md: video does not run CLIP packages (their class names come with the images)."""
    from types import SimpleNamespace

    from pixelforge.deploy.runtime.clip import ClipRuntime
    from pixelforge.deploy.video import run_video
    from pixelforge.errors import PixelforgeError

    runtime = object.__new__(ClipRuntime)  # the refusal needs no model: no tiny CLIP is trained for it
    runtime.package = SimpleNamespace(folder=tmp_path / "clip")
    with pytest.raises(PixelforgeError, match=r"clip: a clip package labels images by class names given with them, "
                                              r"which `pixelforge video` does not take: pixelforge zeroshot"):
        run_video(tmp_path / "clip", str(write_mp4(tmp_path / "clip.mp4")), tmp_path / "out.mp4", runtime=runtime)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("task", ["gan", "clip"])
def test_a_gan_or_clip_run_is_refused_before_it_is_exported(cli, tmp_path, task):
    """A run is exported to a scratch package first; a GAN or CLIP run was exported (a parity check, seconds) only
    for its package to be refused. The run's task is read first: a folder with no checkpoint shows it was not
    exported (that would say 'no checkpoint yet')."""
    from pixelforge.config import save_config
    from pixelforge.tasks.config import build_config

    run = tmp_path / f"{task}-run"
    (run / "checkpoints").mkdir(parents=True)
    save_config(build_config(task=task, data=str(tmp_path)), run / "config.yaml")
    (run / "classes.json").write_text("[]")
    result = cli("video", run, write_mp4(tmp_path / "clip.mp4"), "--out", tmp_path / "out.mp4")
    said = {"gan": f"a GAN run generates images, it takes no video: `pixelforge generate {run} --out DIR`",
            "clip": f"a clip run labels images by class names given with them, which `pixelforge video` does not "
                    f"take: pixelforge zeroshot IMAGES --run {run} --labels \"a,b\""}[task]
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [f"error: {run}: {said}"]
    assert not (tmp_path / "out.mp4").exists()


def test_what_is_not_a_video_is_one_line_on_stderr(cli, package, tmp_path):
    """Before: a still image became a video of one frame; a folder was 'no such video file'; FFmpeg's and OpenCV's
    own log lines ('moov atom not found', "can't open camera by index") came before the error line."""
    cv2.imwrite(str(tmp_path / "photo.png"), np.zeros((24, 32, 3), np.uint8))
    (tmp_path / "notes.mp4").write_text("not a video\n")
    whole = write_mp4(tmp_path / "whole.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[:len(whole) // 3])
    (tmp_path / "clips").mkdir()
    expected = {
        tmp_path / "photo.png": "is a still image (PNG), not a video; `pixelforge predict` predicts images",
        tmp_path / "clips": "is a folder, not a video file (`pixelforge predict` takes folders of images)",
        tmp_path / "notes.mp4": "OpenCV cannot read this video; convert it to H.264/MPEG-4 in .mp4 or .avi",
        tmp_path / "cut.mp4": "the MP4 is cut short: its 'moov' index is missing or incomplete (a recording stopped "
                              "before it was closed, or a copy not finished), so no frame can be read from it",
        "99": None,
    }
    for source, reason in expected.items():
        result = cli("video", package, source, "--out", tmp_path / "out.mp4")
        line = ("error: webcam 99: no camera at this index (or no access to /dev/video99); check the index, or give "
                "a video file") if reason is None else f"error: {source}: {reason}"
        assert result.returncode == 2 and result.stderr.strip().splitlines() == [line], source
        assert not (tmp_path / "out.mp4").exists()


def test_a_clip_of_one_frame_is_one_frame(cli, package, tmp_path):
    """It was read and written, and reported as '1 frames'."""
    result = cli("video", package, write_mp4(tmp_path / "one.mp4", frames=1), "--out", tmp_path / "out.mp4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1 frame in ") and len(_read(tmp_path / "out.mp4")) == 1


class PassThrough:
    """A runtime that draws nothing: what reaches the output is what OpenCV read."""

    task = "stub"

    def predict_frame(self, frame, **options):
        return {}

    def describe(self, prediction):
        return ""

    label = describe

    def draw(self, frame, prediction, text, fps):
        return frame

    def video_summary(self):
        return {}


def test_a_phone_video_with_rotation_metadata_is_written_upright(package, tmp_path):
    """Phones store portrait video landscape with a rotation in the track header ('tkhd' matrix); players turn it.
    OpenCV turns the frames as players do, and the output is written upright, with no rotation left to apply."""
    from pixelforge.deploy.video import run_video

    clip = tmp_path / "portrait.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 24))
    for _ in range(3):
        frame = np.full((24, 32, 3), 200, np.uint8)
        frame[:8, :8] = (0, 0, 255)  # red, top left as stored
        writer.write(frame)
    writer.release()
    # a 90-degree turn clockwise on display, as an iPhone held upright writes it (FFmpeg reads rotation -90)
    edit_box(clip, b"tkhd", 40, struct.pack(">9i", 0, 1 << 16, 0, -1 << 16, 0, 0, 0, 0, 1 << 30))
    result = run_video(package, str(clip), tmp_path / "upright.mp4", runtime=PassThrough())
    frames = _read(tmp_path / "upright.mp4")
    assert result.frames == 3 and frames[0].shape[:2] == (32, 24)  # portrait: 24 wide, 32 high
    red = (frames[1][..., 2] > 180) & (frames[1][..., 1] < 80)
    assert red[:8, 16:].mean() > 0.8 and red[8:].mean() < 0.02  # top right, where a player shows it
    capture = cv2.VideoCapture(str(tmp_path / "upright.mp4"))
    assert capture.get(cv2.CAP_PROP_ORIENTATION_META) == 0


def test_grayscale_and_animated_gif_clips_are_read(package, tmp_path):
    """A grayscale video reaches the runtime as BGR frames, as any other; an animated GIF is a video, not a still
    image (only a picture of one frame is refused)."""
    from PIL import Image

    from pixelforge.deploy.video import run_video

    gray = cv2.VideoWriter(str(tmp_path / "gray.avi"), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), 10,
                           (32, 24), isColor=False)
    for i in range(3):
        gray.write(np.full((24, 32), 50 + 60 * i, np.uint8))
    gray.release()
    pictures = [Image.fromarray(np.full((24, 32, 3), 50 + 60 * i, np.uint8)) for i in range(4)]
    pictures[0].save(tmp_path / "moving.gif", save_all=True, append_images=pictures[1:], duration=100, loop=0)
    for clip, frames in ((tmp_path / "gray.avi", 3), (tmp_path / "moving.gif", 4)):
        result = run_video(package, str(clip), tmp_path / f"{clip.stem}-out.mp4")
        assert result.frames == frames and _read(tmp_path / f"{clip.stem}-out.mp4")[0].shape == (24, 32, 3)


def with_sound_track(path):
    """`path` with a second track whose handler says sound, as a phone's clip has: a copy of its video track's box
    with 'soun' in its 'hdlr', added to the 'moov' index (which OpenCV writes last, so no media offset moves)."""
    data = bytearray(path.read_bytes())
    moov = data.index(b"moov") - 4
    trak = data.index(b"trak", moov) - 4
    size = struct.unpack(">I", data[trak:trak + 4])[0]
    sound = bytearray(data[trak:trak + size])
    handler = sound.index(b"hdlr") + 4 + 8  # the handler type, past the version, flags and pre-defined fields
    sound[handler:handler + 4] = b"soun"
    data[trak + size:trak + size] = sound
    data[moov:moov + 4] = struct.pack(">I", struct.unpack(">I", data[moov:moov + 4])[0] + size)
    path.write_bytes(bytes(data))
    return path


def test_a_clip_with_sound_says_the_output_has_none(package, tmp_path):
    """OpenCV writes pictures only; the sound was dropped without a word."""
    from pixelforge.deploy.video import run_video

    clip = with_sound_track(write_mp4(tmp_path / "phone.mp4"))
    result = run_video(package, str(clip), tmp_path / "out.mp4", runtime=PassThrough())
    assert result.frames == 3 and len(_read(tmp_path / "out.mp4")) == 3
    assert result.note == (f"{tmp_path / 'out.mp4'} has no sound: OpenCV writes the pictures only (to put phone.mp4's "
                           f"sound back: ffmpeg -i {tmp_path / 'out.mp4'} -i {clip} -map 0:v -map 1:a -c copy "
                           f"WITH-SOUND.mp4)")
    silent = run_video(package, str(write_mp4(tmp_path / "silent.mp4")), tmp_path / "out2.mp4", runtime=PassThrough())
    assert silent.note == ""
