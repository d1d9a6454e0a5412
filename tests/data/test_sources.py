"""Folders, CSVs and built-ins all resolve to the same samples; splits are seeded, stratified and leak-free."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelforge.data.sources import collect_paths, resolve_data
from pixelforge.data.splits import make_splits
from pixelforge.errors import PixelforgeError


def make_folder(root: Path, counts: dict, split: str | None = None, size=16) -> Path:
    rng = np.random.default_rng(len(counts))
    for label, n in counts.items():
        folder = root / split / label if split else root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def test_class_folders_without_splits(tmp_path):
    source = resolve_data(make_folder(tmp_path, {"cat": 3, "dog": 2}))
    assert source.classes == ["cat", "dog"] and len(source.samples) == 5 and not source.has_splits


def test_split_folders_are_used(tmp_path):
    make_folder(tmp_path, {"a": 3, "b": 3}, "train")
    make_folder(tmp_path, {"a": 1, "b": 1}, "valid")
    source = resolve_data(tmp_path)
    assert Counter(s.split for s in source.samples) == {"train": 6, "val": 2}


def test_csv_with_groups_and_relative_paths(tmp_path):
    make_folder(tmp_path / "img", {"a": 2, "b": 2})
    rows = ["path,label,split,group"] + [f"img/{l}/{i}.png,{l},{'train' if i == 0 else 'val'},g{i}" for l in "ab" for i in range(2)]
    (tmp_path / "labels.csv").write_text("\n".join(rows))
    source = resolve_data(tmp_path / "labels.csv")
    assert {s.attrs["group"] for s in source.samples} == {"g0", "g1"}
    assert all(s.path.is_file() for s in source.samples) and len(source.split("val")) == 2


def test_csv_written_on_windows_with_backslash_paths_is_read(tmp_path):
    """`img\\a\\0.png` is one file name on POSIX: every image was reported missing."""
    make_folder(tmp_path / "img", {"a": 2, "b": 2})
    rows = ["path,label"] + [f"img\\{l}\\{i}.png,{l}" for l in "ab" for i in range(2)]
    (tmp_path / "labels.csv").write_text("\r\n".join(rows))
    source = resolve_data(tmp_path / "labels.csv")
    assert sorted(s.path.relative_to(tmp_path).as_posix() for s in source.samples) == [
        "img/a/0.png", "img/a/1.png", "img/b/0.png", "img/b/1.png"]
    odd = tmp_path / "img" / "a" / "x\\y.png"  # a POSIX name that holds a backslash is still read as named
    odd.write_bytes((tmp_path / "img" / "a" / "0.png").read_bytes())
    (tmp_path / "odd.csv").write_text("path,label\nimg/a/x\\y.png,a\nimg/b/0.png,b\n")
    assert resolve_data(tmp_path / "odd.csv").samples[0].path == odd


def test_csv_paths_written_from_the_current_folder_are_refused_with_the_reason(tmp_path, monkeypatch):
    """Paths relative to where the user stood, not to the CSV: every image was reported missing by its resolved
    path, which hid why."""
    make_folder(tmp_path / "img", {"a": 2, "b": 2})
    (tmp_path / "lists").mkdir()
    rows = ["path,label"] + [f"img/{l}/{i}.png,{l}" for l in "ab" for i in range(2)]
    (tmp_path / "lists" / "labels.csv").write_text("\n".join(rows))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PixelforgeError, match=r"labels.csv: relative paths are read from the CSV's folder \(.*lists\), "
                                              r"where none of them exists \(img/a/0.png: not there\); they exist from "
                                              r"the current folder"):
        resolve_data(tmp_path / "lists" / "labels.csv")
    (tmp_path / "lists" / "labels.csv").write_text("\n".join(["path,label"] + [f"../img/{l}/{i}.png,{l}" for l in "ab"
                                                                             for i in range(2)]))
    assert len(resolve_data(tmp_path / "lists" / "labels.csv").samples) == 4  # relative to the CSV: read


def test_csv_missing_label_column_is_one_line_error(tmp_path):
    (tmp_path / "bad.csv").write_text("file,class\na.png,x\n")
    with pytest.raises(PixelforgeError, match=r"bad.csv: missing column\(s\) path, label"):
        resolve_data(tmp_path / "bad.csv")


def test_missing_folder_and_folder_without_images(tmp_path):
    with pytest.raises(PixelforgeError, match="no such file or folder"):
        resolve_data(tmp_path / "nope")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(PixelforgeError, match="no images found"):
        resolve_data(tmp_path / "empty")


def test_splits_are_seeded_stratified_and_keep_duplicates_together(tmp_path):
    make_folder(tmp_path, {"a": 20, "b": 10})
    dup = tmp_path / "a" / "copy_of_0.png"
    dup.write_bytes((tmp_path / "a" / "0.png").read_bytes())
    source = resolve_data(tmp_path)
    first = make_splits(source, val_fraction=0.2, seed=3)
    again = make_splits(source, val_fraction=0.2, seed=3)
    assert [s.split for s in first.samples] == [s.split for s in again.samples]
    val = Counter(s.label for s in first.split("val"))
    assert val["b"] == 2 and 3 <= val["a"] <= 5
    by_path = {s.path.name: s.split for s in first.samples if s.label == "a"}
    assert by_path["0.png"] == by_path["copy_of_0.png"]


def test_class_with_one_image_is_rejected(tmp_path):
    make_folder(tmp_path, {"a": 5, "lonely": 1})
    with pytest.raises(PixelforgeError, match="'lonely' has only 1 image"):
        make_splits(resolve_data(tmp_path), 0.2)


def test_collect_paths_files_folders_globs(tmp_path):
    make_folder(tmp_path, {"a": 2, "b": 1})
    given = str(tmp_path / "a" / "0.png")
    assert collect_paths([given]) == [given]
    assert len(collect_paths([tmp_path])) == 3
    assert len(collect_paths([str(tmp_path / "*" / "*.png")])) == 3
    with pytest.raises(PixelforgeError):
        collect_paths([tmp_path / "missing.png"])


def test_builtin_datasets_have_three_splits():
    digits = resolve_data("digits")
    assert len(digits.samples) == 1797 and digits.classes == [str(i) for i in range(10)]
    assert {s.split for s in digits.samples} == {"train", "val", "test"}


def test_a_builtin_set_another_process_finished_first_is_kept(tmp_path, monkeypatch):
    """Two trainings started at once both build a built-in set in the cache: the second must not delete the first's
    copy while it is being read (before: caption's training stopped on 'file not found' beside a clip training)."""
    from pixelforge.data import builtin

    target = tmp_path / "shapes"

    def write_while_another_finishes(root, seed):
        (root / "ours.txt").write_text("ours")
        target.mkdir()
        (target / "theirs.txt").write_text("theirs")
        (target / ".complete").touch()

    monkeypatch.setattr(builtin, "_writer", lambda name, kind: write_while_another_finishes)
    assert builtin.materialize("shapes", out=target) == target
    assert (target / "theirs.txt").exists() and not (target / "ours.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]  # the staging copy is gone


def test_symbolic_links_that_point_nowhere_are_listed_not_sampled(tmp_path):
    make_folder(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "a" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "a" / "real.png").symlink_to(tmp_path / "a" / "0.png")  # a working link is an ordinary image
    source = make_splits(resolve_data(tmp_path), 0.2)
    assert source.broken_links == [str(tmp_path / "a" / "gone.png")]
    assert len(source.samples) == 7 and all(s.path.name != "gone.png" for s in source.samples)
    (tmp_path / "labels.csv").write_text("path,label\na/0.png,a\na/gone.png,a\nb/0.png,b\n")
    from_csv = resolve_data(tmp_path / "labels.csv")
    assert from_csv.broken_links == [str(tmp_path / "a" / "gone.png")] and len(from_csv.samples) == 2


def test_a_folder_of_iphone_heic_photos_given_to_predict_is_named_as_such_not_as_holding_no_images(tmp_path):
    (tmp_path / "phone").mkdir()
    for i in range(3):
        (tmp_path / "phone" / f"IMG_000{i}.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    with pytest.raises(PixelforgeError, match=r"phone: holds 3 image\(s\) in formats pixelforge does not read "
                                              r"\(\.heic, e\.g\. IMG_0000\.HEIC\) and none it reads; convert them"):
        collect_paths([tmp_path / "phone"])
    Image.new("RGB", (8, 8)).save(tmp_path / "phone" / "one.jpg")  # with a photo it reads, the rest is passed over
    assert collect_paths([tmp_path / "phone"]) == [str(tmp_path / "phone" / "one.jpg")]
