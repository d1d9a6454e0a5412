"""Files pixelforge writes atomically get the mode `open()` would give them (0666 less the umask), not mkstemp's
private 0600: a report or package shared with a team must be readable by it."""

from __future__ import annotations

import os
import stat

import pytest

from pixelforge.runs import folder as rd


@pytest.fixture
def umask():
    def set_umask(value: int) -> None:
        os.umask(value)

    old = os.umask(0o022)
    yield set_umask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    rd.write_json(tmp_path / "summary.json", {"ok": True})
    rd.atomic_write_bytes(tmp_path / "model_card.md", lambda handle: handle.write(b"# card"))
    assert _mode(tmp_path / "summary.json") == expected and _mode(tmp_path / "model_card.md") == expected
    assert rd.current_umask() == mask  # read without changing it


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_trained_runs_files_are_readable_by_others_under_umask_022(tmp_path, umask, shapes_dir):
    import pixelforge

    umask(0o022)
    run = pixelforge.train(str(shapes_dir), model="simple_cnn", weights="none", img_size=32, epochs=1,
                           batch_size=32, strategy="full", out=str(tmp_path / "run"), quiet=True).run_dir
    for name in ("report.html", "summary.json", "classes.json", "model_card.md", "checkpoints/best.ckpt"):
        assert _mode(run / name) == 0o644, name


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_an_exported_package_follows_the_umask(tiny_run, tmp_path, umask):
    from pixelforge.tasks.classify.export import export_package

    umask(0o027)  # a group-shared package: nothing for others, not the fixed 0755 of before
    package = export_package(tiny_run, tmp_path / "pkg").package_dir
    assert _mode(package) == 0o750
    for name in ("package.json", "classes.json", "preprocess.json", "parity.json"):
        assert _mode(package / name) == 0o640, name


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_data_make_and_data_convert_write_folders_that_follow_the_umask(tmp_path, umask):
    """Both write beside --out and rename: the folder kept mkdtemp's private 0700, unreadable to the team."""
    from pixelforge.data.boxes.convert import convert_boxes
    from pixelforge.data.builtin import materialize
    from pixelforge.data.split_digits import write_split_digits

    umask(0o022)
    made = materialize("shapes", tmp_path / "made", kind="boxes")
    convert_boxes(made, tmp_path / "converted", to="yolo")
    write_split_digits(tmp_path / "split", tasks=2)
    for name in ("made", "converted", "split"):
        assert _mode(tmp_path / name) == 0o755, name
