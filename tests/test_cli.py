"""Every CLI command as a user runs it: results on stdout, one-line errors with exit code 2, no tracebacks."""

import json
import shutil
from pathlib import Path

import pytest


def test_evaluate_json_has_accuracy_and_metrics(cli, tiny_run, shapes_dir):
    result = cli("evaluate", tiny_run, "--data", shapes_dir, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["split"] == "test"
    assert list(metrics)[0] == "task" and metrics["task"] == "classify"  # as every task's evaluate --json names it
    assert set(metrics["per_class"]) == {"circle", "square", "star", "triangle"}
    assert {"macro_f1", "weighted_f1", "ece", "confusion_matrix"} <= set(metrics)
    assert (tiny_run / "eval-test" / "confusion_matrix.png").is_file()


def test_evaluate_plain_folder_scores_every_image(cli, tiny_run, shapes_dir):
    result = cli("evaluate", tiny_run, "--data", shapes_dir / "val", "--json")
    metrics = json.loads(result.stdout)
    assert metrics["num_images"] == len(list((shapes_dir / "val").rglob("*.png"))) and metrics["split"] == "all"


def test_evaluations_of_other_data_are_kept_side_by_side(cli, tiny_run, shapes_dir, tmp_path):
    """`--data A` then `--data B` both score a plain folder ("all"): B goes to eval-all-2 instead of replacing A's
    metrics; repeating A rewrites A's own folder; an existing --out is refused before anything is scored."""
    def folder_of(*args):
        result = cli("evaluate", tiny_run, *args, "--json")
        assert result.returncode == 0, result.stderr
        metrics = json.loads(result.stdout)
        return Path(metrics["figures"]["confusion_matrix"]).parent, metrics["num_images"]

    few = tmp_path / "few"  # three images a class: another data set than val
    for image in sorted((shapes_dir / "val").glob("*/*.png")):
        if len(list((few / image.parent.name).glob("*.png"))) < 3:
            (few / image.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(image, few / image.parent.name / image.name)
    first, n_first = folder_of("--data", shapes_dir / "val")
    second, n_second = folder_of("--data", few)
    assert first != second and first.parent == second.parent == tiny_run
    assert json.loads((first / "metrics.json").read_text())["num_images"] == n_first != n_second
    assert json.loads((second / "metrics.json").read_text())["num_images"] == n_second
    again, _ = folder_of("--data", str(shapes_dir / "val") + "/.")  # the same folder, spelt otherwise
    assert again == first
    taken = cli("evaluate", tiny_run, "--out", first)
    assert taken.returncode == 2 and "already exists" in taken.stderr


def test_predict_json_csv_and_top_k(cli, tiny_run, shapes_dir, tmp_path):
    image = str(next((shapes_dir / "test" / "star").glob("*.png")))
    result = cli("predict", tiny_run, image, shapes_dir / "val" / "circle", "--json", "--top-k", "2")
    rows = json.loads(result.stdout)
    assert rows[0]["path"] == image and rows[0]["label"] in {"circle", "square", "star", "triangle"}
    assert 0 <= rows[0]["score"] <= 1 and len(rows[0]["top_k"]) == 2
    assert len(rows) == 1 + len(list((shapes_dir / "val" / "circle").glob("*.png")))
    assert cli("predict", tiny_run, image, "--csv", tmp_path / "p.csv").returncode == 0
    assert (tmp_path / "p.csv").read_text().startswith("path,label,score")
    again = cli("predict", tiny_run, image, "--csv", tmp_path / "p.csv")  # refused before predicting: not overwritten
    assert again.returncode == 2 and "p.csv: already exists" in again.stderr


def test_predict_out_for_printed_predictions_says_nothing_was_written_there(cli, tiny_run, shapes_dir, tmp_path):
    """A classifier's (or captioner's) predictions are printed; `--out` was accepted and silently left unwritten."""
    image = str(next((shapes_dir / "test" / "star").glob("*.png")))
    result = cli("predict", tiny_run, image, "--out", tmp_path / "labels")
    assert result.returncode == 0 and result.stdout.startswith(f"{image}: ")
    assert f"warning: --out {tmp_path / 'labels'}: nothing written there" in result.stderr
    assert not (tmp_path / "labels").exists()
    assert "nothing written" not in cli("predict", tiny_run, image).stderr  # no --out asked for: nothing to say


def test_train_cli_with_config_file(cli, shapes_dir, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"data: {shapes_dir}\nmodel: simple_cnn\nweights: none\nimg_size: 32\nepochs: 5\n")
    result = cli("train", "--config", config, "--epochs", "1", "--out", tmp_path / "run", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "best val accuracy" in result.stdout
    assert "epochs: 1" in (tmp_path / "run" / "config.yaml").read_text()


def test_quiet_train_logs_one_line_per_epoch_and_no_lightning_info(cli, tmp_path):
    from PIL import Image

    for label, color in (("dark", 40), ("light", 200)):  # 24 images: two epochs in seconds
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(12):
            Image.new("RGB", (32, 32), (color + i, color, color)).save(tmp_path / "data" / label / f"{i}.png")
    # bf16-mixed explicitly: Lightning announces its AMP on any CPU, whatever `auto` would choose here.
    result = cli("train", "--data", tmp_path / "data", "--model", "simple_cnn", "--weights", "none", "--strategy", "full",
                 "--img-size", "32", "--epochs", "2", "--precision", "bf16-mixed", "--quiet", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    epochs = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2, result.stderr
    assert all("train_loss" in line and "val_acc" in line and "img/s" in line for line in epochs)
    assert "Automatic Mixed Precision" not in result.stderr
    assert "\r" not in result.stderr  # no progress bar


def test_models_lists_backbones_with_flops(cli):
    result = cli("models", "--img-size", "128")
    assert result.returncode == 0 and "tf_efficientnet_lite0" in result.stdout and "vgg16_bn" in result.stdout


def test_lr_find_writes_a_plot(cli, shapes_dir, tmp_path):
    out = tmp_path / "lr.png"
    # Batch 8 and 40 steps, not the default 32 and 100: a quarter of the time or less, and still a curve.
    result = cli("lr-find", "--data", shapes_dir, "--model", "simple_cnn", "--weights", "none", "--img-size", "32",
                 "--strategy", "full", "--batch-size", "8", "--steps", "40", "--seed", "3", "--out", out)
    assert result.returncode == 0, result.stderr
    assert out.is_file() and "suggested learning rate" in result.stdout
    before = out.read_bytes()
    again = cli("lr-find", "--data", shapes_dir, "--steps", "40", "--out", out)  # refused before any work
    assert again.returncode == 2 and "already exists" in again.stderr and out.read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "/no/such/folder"], "no such file or folder"),
    (["train", "--data", "digits", "--model", "resnet5"], "did you mean"),
    (["train", "--data", "digits", "--model", "inception_v3", "--img-size", "64"], "too small for inception_v3"),
    (["train", "--data", "digits", "--weights", "/no/such.pth"], "weights file not found"),
    (["train", "--data", "digits", "--precision", "8"], "precision"),
    (["evaluate", "/tmp"], "not a pixelforge run folder"),
    (["predict", "/tmp", "/no/such.png"], "no such file or folder"),
])
def test_user_mistakes_get_one_line_and_exit_code_2(cli, args, message, tmp_path):
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()  # a rejected run leaves no folder behind


@pytest.mark.slow
def test_quickstart_reaches_98_percent_on_digits(cli, tmp_path):
    # A new interpreter, as a new user's first command: nothing imported ahead of it (the `cli` fixture's zygote
    # has torch loaded, which skips the decoding helper that only runs while torch imports).
    result = cli("quickstart", "--out", tmp_path / "qs", "--quiet", fresh=True)
    assert result.returncode == 0, result.stderr
    assert "report:" in result.stdout and (tmp_path / "qs" / "report.html").is_file()
    metrics = json.loads((tmp_path / "qs" / "eval-test" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.98


def test_evaluate_on_a_folder_leaves_out_the_runs_training_images(cli, tiny_run, shapes_dir, tmp_path):
    import shutil

    mixed = tmp_path / "mixed"
    for label in ("circle", "square"):
        (mixed / label).mkdir(parents=True)
        for i, image in enumerate(sorted((shapes_dir / "train" / label).glob("*.png"))[:3]):
            shutil.copy(image, mixed / label / f"copy{i}.png")  # a training image under another name
        for image in sorted((shapes_dir / "test" / label).glob("*.png"))[:2]:
            shutil.copy(image, mixed / label / image.name)
    result = cli("evaluate", tiny_run, "--data", mixed, "--json", "--out", tmp_path / "eval")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["num_images"] == 4 and metrics["excluded_training_images"] == 6
    assert "6 of 10 images are the run's training images" in result.stderr
    everything = json.loads(cli("evaluate", tiny_run, "--data", mixed, "--json", "--include-train",
                                "--out", tmp_path / "eval-with-train").stdout)
    assert everything["num_images"] == 10 and everything["excluded_training_images"] is None


def test_evaluate_on_the_training_folder_alone_is_an_error(cli, tiny_run, shapes_dir, tmp_path):
    result = cli("evaluate", tiny_run, "--data", shapes_dir / "train", "--out", tmp_path / "eval")
    assert result.returncode == 2 and "are the run's own training images" in result.stderr
    assert "--include-train" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_evaluate_refuses_a_task_other_than_the_runs_instead_of_ignoring_it(cli, tiny_run, tmp_path):
    result = cli("evaluate", tiny_run, "--task", "detect", "--out", tmp_path / "eval")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "a classify run" in result.stderr and "--task detect" in result.stderr
    assert not (tmp_path / "eval").exists()
    same = cli("evaluate", tiny_run, "--task", "classify", "--json", "--out", tmp_path / "eval-same")
    assert same.returncode == 0 and "accuracy" in json.loads(same.stdout)


def test_predict_reports_a_file_that_is_not_an_image_once_and_fails(cli, tiny_run, shapes_dir, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    alone = cli("predict", tiny_run, notes)
    assert alone.returncode == 2 and alone.stdout == ""
    assert alone.stderr.count(str(notes)) == 1 and "none of the 1 file(s) given could be predicted" in alone.stderr
    assert alone.stderr.count("error:") == 1
    image = str(next((shapes_dir / "test" / "star").glob("*.png")))
    mixed = cli("predict", tiny_run, image, notes)
    assert mixed.returncode == 1
    assert mixed.stdout.startswith(f"{image}: ") and str(notes) not in mixed.stdout
    assert mixed.stderr.strip().splitlines() == [line for line in mixed.stderr.strip().splitlines()
                                                 if line.startswith(f"{notes}: error: ")]
    assert len(mixed.stderr.strip().splitlines()) == 1


def test_export_tolerances_below_zero_are_refused_before_exporting(cli, tiny_run, tmp_path):
    result = cli("export", tiny_run, "--tolerance", "-1", "--out", tmp_path / "pkg")
    assert result.returncode == 2 and "--tolerance" in result.stderr and not (tmp_path / "pkg").exists()
