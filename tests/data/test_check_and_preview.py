"""`data check` finds every problem it promises (and never crashes on them); `data preview` draws a grid."""

import json

import numpy as np
from PIL import Image

from pixelforge.data.check import check_dataset
from tests.data.test_sources import make_folder


def _problem_dataset(root):
    make_folder(root, {"a": 4, "b": 4}, "train")
    make_folder(root, {"a": 1, "b": 1}, "val")
    (root / "train" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (root / "train" / "b" / "empty.png").write_bytes(b"")
    (root / "train" / "b" / "dup.png").write_bytes((root / "train" / "b" / "0.png").read_bytes())
    (root / "val" / "a" / "leak.png").write_bytes((root / "train" / "a" / "1.png").read_bytes())
    Image.new("L", (16, 16)).save(root / "train" / "a" / "gray.png")
    Image.new("CMYK", (16, 16)).save(root / "train" / "a" / "cmyk.jpg")
    return root


def test_check_reports_every_kind_of_problem(tmp_path):
    report = check_dataset(str(_problem_dataset(tmp_path)))
    assert any("broken.jpg" in line for line in report.unreadable)
    assert any(p.endswith("empty.png") for p in report.zero_byte)
    assert any(any(p.endswith("dup.png") for p in group) for group in report.duplicates)
    assert any(any("leak.png" in p for p in group) for group in report.cross_split_duplicates)
    assert report.modes.get("grayscale") == 1 and report.modes.get("CMYK") == 1
    assert report.per_split["train"]["a"] == 7 and report.problem_count >= 4


def test_check_cli_strict_exit_code_and_json(tmp_path, cli):
    clean = make_folder(tmp_path / "clean", {"a": 3, "b": 3})
    assert cli("data", "check", str(clean), "--strict").returncode == 0
    bad = _problem_dataset(tmp_path / "bad")
    result = cli("data", "check", str(bad), "--strict", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["problem_count"] >= 4


def test_check_exits_1_on_problems_that_stop_training_and_0_on_warnings(tmp_path, cli):
    """Without --strict it exited 0 even on corrupt files; duplicates and leakage (training runs on every copy) are
    warnings: exit 0, saying so, and 1 only under --strict."""
    copies = make_folder(tmp_path / "copies", {"a": 3, "b": 3})
    (copies / "a" / "copy.png").write_bytes((copies / "a" / "0.png").read_bytes())
    warned = cli("data", "check", str(copies))
    assert warned.returncode == 0 and "only warnings: training runs" in warned.stdout, warned.stdout
    assert cli("data", "check", str(copies), "--strict").returncode == 1
    (copies / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    result = cli("data", "check", str(copies), "--json")
    assert result.returncode == 1 and result.stderr == ""
    report = json.loads(result.stdout)  # the JSON is whole: a script reads it and the exit code
    assert report["error_count"] == 1 and report["problem_count"] == 2 and "broken.jpg" in report["unreadable"][0]
    photos = cli("data", "check", str(_photo_folder(tmp_path / "photos")), "--task", "denoise")
    assert photos.returncode == 1 and "unreadable or corrupt files: 1" in photos.stdout


def test_every_report_counts_errors_apart_from_warnings(tmp_path):
    """Every task's report (class folders, photos, boxes, masks, captions) says which problems stop training."""
    from pixelforge.data.boxes.check import check_boxes
    from tests.data.boxes.test_check_preview import _broken_coco

    boxes = check_boxes(_broken_coco(tmp_path / "coco")[0])
    assert boxes.problem_count == 9 and boxes.error_count == 7  # a box outside the image, one of zero area: warnings
    assert boxes.to_json()["error_count"] == 7
    report = check_dataset(str(_problem_dataset(tmp_path / "folders")))
    assert report.error_count == 2 and report.problem_count > 2  # broken.jpg, empty.png; the rest are copies


def test_preview_writes_a_png_grid(tmp_path, cli, shapes_dir):
    out = tmp_path / "grid.png"
    result = cli("data", "preview", str(shapes_dir), "--out", str(out), "--img-size", "48", "--count", "8")
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(out))
    assert image.shape[0] > 100 and image.std() > 10


def test_preview_never_overwrites_a_png(tmp_path, cli, shapes_dir):
    args = ("data", "preview", str(shapes_dir), "--img-size", "32", "--count", "2")
    (tmp_path / "preview.png").write_bytes(b"the user's own file")
    first = cli(*args, cwd=tmp_path)  # the default name is taken: the next free number
    assert first.returncode == 0 and "preview-2.png" in first.stdout and (tmp_path / "preview-2.png").is_file()
    refused = cli(*args, "--out", str(tmp_path / "preview.png"))  # named explicitly: refused, untouched
    assert refused.returncode == 2 and "already exists" in refused.stderr
    assert (tmp_path / "preview.png").read_bytes() == b"the user's own file"


def test_make_writes_a_builtin_dataset_and_refuses_to_overwrite(tmp_path, cli):
    out = tmp_path / "shapes"
    assert cli("data", "make", "shapes", "--out", str(out)).returncode == 0
    assert len(list((out / "test").rglob("*.png"))) > 50
    again = cli("data", "make", "shapes", "--out", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr
    (tmp_path / "notes.txt").write_text("the user's own file")  # a file as --out: was a NotADirectoryError traceback
    onto_file = cli("data", "make", "shapes", "--out", str(tmp_path / "notes.txt"))
    assert onto_file.returncode == 2 and onto_file.stderr.startswith("error: ") and "Traceback" not in onto_file.stderr


def test_check_reports_a_single_class_as_a_problem(tmp_path, cli):
    one = make_folder(tmp_path / "one", {"cats": 3})
    report = check_dataset(str(one))
    assert report.single_class == ["cats"] and report.problem_count >= 1
    result = cli("data", "check", str(one), "--strict")
    assert result.returncode == 1 and "only one class" in result.stdout


def test_check_lists_symbolic_links_that_point_nowhere(tmp_path, cli):
    root = make_folder(tmp_path / "data", {"a": 3, "b": 3})
    (root / "a" / "gone.png").symlink_to(tmp_path / "moved-disk" / "gone.png")
    (root / "b" / "also-gone.jpg").symlink_to("../nowhere.jpg")
    report = check_dataset(str(root))
    assert report.broken_links == [str(root / "a" / "gone.png"), str(root / "b" / "also-gone.jpg")]
    assert report.problem_count == 2 and report.total == 6
    result = cli("data", "check", str(root), "--strict")
    assert result.returncode == 1 and "point nowhere: 2" in result.stdout and "gone.png" in result.stdout


def _photo_folder(root):
    """Unlabelled photos at any depth (what denoise, compress and style read), with a corrupt file and a copy."""
    rng = np.random.default_rng(0)
    for name in ("train/a.png", "train/deep/b.png", "val/c.png", "loose.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), np.uint8)).save(root / name)
    (root / "train" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (root / "val" / "copy.png").write_bytes((root / "train" / "a.png").read_bytes())
    return root


def test_every_photo_folder_task_checks_a_folder_of_unlabelled_photos(tmp_path, cli):
    from pixelforge.tasks.registry import TASKS

    root = _photo_folder(tmp_path / "photos")
    tasks = sorted(name for name, cls in TASKS.items() if cls.reads_photo_folder)
    assert {"denoise", "compress", "style"} <= set(tasks)
    for task in tasks:
        report = TASKS[task]().check_dataset(str(root), img_size=256)
        assert report.total == 6 and report.per_split == {"train": {"images": 3}, "unsplit": {"images": 1},
                                                          "val": {"images": 2}}, task
        assert [line.split(":")[0] for line in report.unreadable] == [str(root / "train" / "broken.jpg")], task
        assert any(any(p.endswith("copy.png") for p in g) for g in report.cross_split_duplicates), task
        assert not report.single_class and not report.small_classes, task  # no classes to count
        assert len(report.tiny_images) == 5 and report.problem_count == 3, task  # 24 px under 256 / 4
    result = cli("data", "check", str(root), "--task", "denoise", "--strict", "--json")
    assert result.returncode == 1 and "broken.jpg" in json.loads(result.stdout)["unreadable"][0]


def test_gan_checks_what_it_trains_on_class_folders_or_a_plain_folder(tmp_path):
    """As GAN training reads it: class folders (one class is no problem for a GAN), else the photos as one set."""
    from pixelforge.tasks.registry import get_task

    faces = make_folder(tmp_path / "faces", {"face": 4})
    report = get_task("gan").check_dataset(str(faces))
    assert report.per_class == {"face": 4} and report.problem_count == 0
    for image in (faces / "face").iterdir():
        image.rename(faces / image.name)
    (faces / "face").rmdir()
    report = get_task("gan").check_dataset(str(faces))
    assert report.per_class == {"images": 4} and report.problem_count == 0


def test_check_prints_the_folder_s_name_whole_above_a_narrow_table(tmp_path, cli):
    # The heading was the table's title, wrapped to the 3-column table's width: the path came out cut in two lines.
    root = make_folder(tmp_path / "a-folder-with-a-rather-long-name" / "train", {"images": 3})
    result = cli("data", "check", str(root), "--task", "denoise")
    assert f"{root}: 3 images" in result.stdout.splitlines()
