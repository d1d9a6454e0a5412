"""`pixelforge explain`: one three-panel PNG per image, faithfulness numbers, clear errors; the report's gallery."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from pixelforge.errors import PixelforgeError
from pixelforge.explain.commands import explain_images


@pytest.fixture(scope="module")
def shape_images(shapes_dir):
    return [sorted((shapes_dir / "test" / name).glob("*.png"))[0] for name in ("circle", "square", "star")]


def test_cli_writes_one_png_per_image(tiny_run, shape_images, tmp_path, cli):
    out = tmp_path / "why"
    proc = cli("explain", tiny_run, *shape_images, "--method", "gradcam", "--out", out,
               env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    pngs = sorted(out.glob("*.png"))
    assert [p.stem for p in pngs] == sorted(p.stem for p in shape_images)
    width, height = Image.open(pngs[0]).size
    assert width > 2.5 * height  # image | heat map | overlay
    scores = json.loads((out / "faithfulness.json").read_text())
    assert scores["method"] == "gradcam" and len(scores["images"]) == 3
    assert {"deletion_auc", "insertion_auc", "random_deletion_auc"} <= set(scores["mean"])
    assert "deletion" in proc.stdout and "explained" in proc.stdout


@pytest.mark.parametrize("method", ["gradcam++", "eigencam", "saliency", "integrated-gradients"])
def test_every_method_explains_a_chosen_target(tiny_run, shape_images, tmp_path, method):
    rows = explain_images(tiny_run, [str(shape_images[0])], method, target="star", out=tmp_path, faithfulness=False)
    assert rows[0]["explained"] == "star" and (tmp_path / f"{shape_images[0].stem}.png").is_file()
    assert not (tmp_path / "faithfulness.json").exists()


def test_images_with_the_same_name_get_distinct_files(tiny_run, shapes_dir, tmp_path):
    a = sorted((shapes_dir / "test" / "circle").glob("*.png"))[0]
    b = shapes_dir / "val" / "circle" / a.name
    if not b.exists():
        b = tmp_path / "copy" / a.name
        b.parent.mkdir()
        b.write_bytes(a.read_bytes())
    rows = explain_images(tiny_run, [str(a), str(b)], "gradcam", out=tmp_path / "out", faithfulness=False)
    assert len({r["png"] for r in rows}) == 2


def test_unknown_target_is_a_user_error(tiny_run, shape_images, tmp_path):
    with pytest.raises(PixelforgeError, match=r"--target 'hexagon' is not a class of .* \(circle, square, star, triangle\)"):
        explain_images(tiny_run, [str(shape_images[0])], "gradcam", target="hexagon", out=tmp_path)


def test_cli_reports_a_bad_method_in_one_line(tiny_run, shape_images, tmp_path, cli):
    proc = cli("explain", tiny_run, shape_images[0], "--method", "lime", "--out", tmp_path)
    assert proc.returncode == 2
    assert "--method 'lime' is not a method" in proc.stderr and "Traceback" not in proc.stderr


def test_run_report_has_a_gradcam_gallery_and_faithfulness(tiny_run):
    report = (tiny_run / "report.html").read_text()
    assert "Where the model looked (Grad-CAM)" in report and "gradcam.png" in report
    assert "Faithfulness on" in report
    metrics = json.loads((tiny_run / "eval-test" / "metrics.json").read_text())
    assert metrics["faithfulness"]["method"] == "gradcam" and 0 <= metrics["faithfulness"]["deletion_auc"] <= 1


@pytest.mark.parametrize("task", ["gan", "style", "denoise", "detect"])
def test_a_run_that_is_not_a_classifier_is_refused_in_one_line(task, shape_images, tmp_path, cli):
    run = tmp_path / "run"  # what explain reads first: the run's task, from its config.yaml
    run.mkdir()
    (run / "config.yaml").write_text(f"task: {task}\ndata: somewhere\n")
    (run / "classes.json").write_text('["a", "b"]')
    proc = cli("explain", run, shape_images[0], "--out", tmp_path / "why")
    assert proc.returncode == 2 and f"this is a '{task}' run" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "why").exists()


def test_the_score_shown_is_the_calibrated_one_predict_gives(tiny_run, shape_images, tmp_path):
    """A run's scores are softmax(logits / T) everywhere (docs/classification.md); explain showed the raw softmax,
    so the same image read 0.68 in explain and 0.996 in predict."""
    import shutil

    import pixelforge

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "calibration.json").write_text(json.dumps({"temperature": 0.25}))
    rows = explain_images(run, [str(shape_images[0])], "gradcam", out=tmp_path / "why", faithfulness=False)
    predicted = pixelforge.predict(run, [str(shape_images[0])])[0]
    assert rows[0]["predicted"] == predicted["label"]
    assert rows[0]["score"] == pytest.approx(predicted["score"], abs=1e-4)


def test_pixelforge_explain_images_is_the_command_default_folder_numbered_and_never_written_into(
        tiny_run, shape_images, tmp_path, monkeypatch):
    """`pixelforge.explain_images` (the command had no public function) takes the command's defaults: OUT is
    explanations, then explanations-2; a folder that holds files is refused, as `--out` refuses it."""
    import pixelforge

    monkeypatch.chdir(tmp_path)
    first = pixelforge.explain_images(tiny_run, str(shape_images[0]), faithfulness=False)
    second = pixelforge.explain_images(tiny_run, [str(shape_images[1])], faithfulness=False)
    assert first[0]["png"] == os.path.join("explanations", f"{shape_images[0].stem}.png")
    assert second[0]["png"] == os.path.join("explanations-2", f"{shape_images[1].stem}.png")
    with pytest.raises(PixelforgeError, match="already exists"):
        pixelforge.explain_images(tiny_run, [str(shape_images[2])], out="explanations")
    assert sorted(p.name for p in (tmp_path / "explanations").iterdir()) == [f"{shape_images[0].stem}.png"]
