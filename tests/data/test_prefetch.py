"""The start-up decoding helper (data/prefetch.py, lever L26) hands preload exactly the pixels it would decode,
leaves files it cannot read to preload, cleans up after itself, and starts before torch is imported."""

import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image

from pixelforge.data import dataset, prefetch
from pixelforge.data.dataset import ImageDataset
from pixelforge.data.images import decode_array
from pixelforge.data.sources import Sample


@pytest.fixture(autouse=True)
def _no_helper_left():
    yield
    prefetch.discard()


def _photos(folder, count=4):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):  # JPEGs large enough for draft mode, a PNG, odd sizes
        size = (300 + 37 * i, 200 + 11 * i)
        path = folder / (f"p{i}.jpg" if i % 2 == 0 else f"p{i}.png")
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _finished():
    prefetch._state["process"].wait(timeout=60)


def test_helper_writes_what_decode_array_gives_and_skips_what_it_cannot_read(tmp_path):
    paths = _photos(tmp_path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    assert prefetch.start([*paths, broken], 64, 1e9)
    assert not prefetch.start(paths, 64, 1e9)  # one helper at a time
    _finished()
    assert prefetch.take(paths[0], 96) is None  # another size: not what was decoded
    for path in paths:
        np.testing.assert_array_equal(prefetch.take(path, 64), decode_array(path, 64))
    assert prefetch.take(paths[0], 64) is None  # taken once
    assert prefetch.take(broken, 64) is None
    folder = prefetch._state["folder"]
    prefetch.discard()
    assert not folder.exists() and not prefetch.running()


def test_budget_stops_the_helper_and_preload_decodes_the_rest(tmp_path):
    paths = _photos(tmp_path)
    assert prefetch.start(paths, 64, 1)  # room for one image
    _finished()
    taken = [prefetch.take(p, 64) is not None for p in paths]
    assert taken == [True, False, False, False]


def test_preload_takes_the_helpers_pixels(tmp_path, monkeypatch):
    paths = _photos(tmp_path)
    samples = [Sample(p, "a" if i % 2 else "b") for i, p in enumerate(paths)]
    expected = ImageDataset(samples, {"a": 0, "b": 1}, 64)
    expected.preload()
    assert prefetch.start(paths, 64, 1e9)
    _finished()

    def must_not_decode(path, short_side):
        raise AssertionError(f"{path} decoded again although the helper had it")

    monkeypatch.setattr(dataset, "decode_array", must_not_decode)
    fast = ImageDataset(samples, {"a": 0, "b": 1}, 64)
    assert fast.preload() == []
    for a, b in zip(fast.cache, expected.cache):
        assert a.shape == b.shape and bool((a == b).all())


def test_a_helper_behind_preload_is_stopped_and_what_it_wrote_is_still_taken(tmp_path):
    """preload asks in the helper's order, so the first image the helper has not written means it is behind: it is
    stopped (it would decode what preload decodes anyway) and the images it did write are still used."""
    import shutil

    first = _photos(tmp_path, 1)[0]
    paths = [first] + [shutil.copy(first, tmp_path / f"copy{i}.jpg") for i in range(300)]
    assert prefetch.start(paths, 64, 1e9)
    folder, process = prefetch._state["folder"], prefetch._state["process"]
    while not (folder / "0.npy").exists():
        assert process.poll() is None, "the helper ended without writing"
    assert prefetch.take(paths[0], 64) is not None
    assert prefetch.take(paths[-1], 64) is None  # the last image: not written yet
    assert process.wait(timeout=30) is not None
    written = sorted(f for f in folder.glob("*.npy") if f.stem.isdigit())  # not a .partial.npy cut off by the kill
    if written:  # whatever it wrote before it was stopped is still there to take
        number = int(written[0].stem)
        assert prefetch.take(paths[number], 64) is not None


def test_discard_ends_a_running_helper_and_removes_its_files(tmp_path):
    paths = _photos(tmp_path, 2) * 200  # long enough to be running when discarded
    assert prefetch.start(paths, 64, 1e9)
    process, folder = prefetch._state["process"], prefetch._state["folder"]
    prefetch.discard()
    assert process.poll() is not None and not folder.exists()


def test_classify_asks_for_the_size_its_datasets_decode_at(shapes_dir, monkeypatch):
    """start_decoding's paths and size are the ones task.py's datasets then preload (else nothing is gained)."""
    from pixelforge.tasks.classify import task as classify_task
    from pixelforge.tasks.config import build_config
    from pixelforge.tasks.registry import get_task

    cfg = build_config(None, data=str(shapes_dir), model="simple_cnn", weights="none", img_size=32)
    task = get_task("classify")
    source, classes = task.prepare_data(cfg)
    task.start_decoding(cfg, source)
    _finished()
    monkeypatch.setattr(dataset, "decode_array", lambda *a: pytest.fail("decoded again"))
    progress = types.SimpleNamespace(counter=lambda *a: (lambda *b: None, lambda: None))
    from pixelforge.data.transforms import resolve_augment
    from pixelforge.models.registry import get_spec

    train, val, unreadable = classify_task._decoded_datasets(cfg, source, classes, get_spec(cfg.model),
                                                             resolve_augment(cfg.augment, cfg.augment_options), progress)
    assert len(train) + len(val) == len(source.split("train")) + len(source.split("val")) and not unreadable


def test_the_command_reaches_the_helper_before_torch():
    """The lever hides the decoding behind torch's import: everything `pixelforge train` does up to starting the
    helper must stay free of torch."""
    code = ("import sys\n"
            "import pixelforge.cli\n"
            "from pixelforge.api import train\n"
            "from pixelforge.tasks.classify import data\n"
            "from pixelforge.tasks.config import build_config\n"
            "from pixelforge.tasks.registry import get_task\n"
            "cfg = build_config(None, data='digits')\n"
            "get_task(cfg.task).check_config(cfg)\n"
            "from pixelforge.data import prefetch\n"
            "assert 'torch' not in sys.modules, [m for m in sys.modules if m.startswith('torch')][:3]\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
