"""End to end: a deliberately biased dataset, the gap `evaluate --groups` finds, and `--balance groups` shrinking it.

The data: 32 px noise images with a faint horizontal or vertical bar (the class). In the common group the whole
image is tinted red for one class and green for the other, a shortcut; the rare group (about 6% of training) has
the tints swapped. A head trained on frozen features takes the shortcut and fails the rare group; drawing both
groups equally often (`--balance groups`) makes the bar the only cue that works, and the gap closes.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import pixelforge
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.classify.evaluate import evaluate

TINT = {"red": (60, -30, 0), "green": (-30, 60, 0)}
SHORTCUT = {("common", "horizontal"): "red", ("common", "vertical"): "green",
            ("rare", "horizontal"): "green", ("rare", "vertical"): "red"}
COUNTS = {"train": {"common": 120, "rare": 8}, "val": {"common": 20, "rare": 1}, "test": {"common": 40, "rare": 40}}
OPTIONS = dict(img_size=32, epochs=10, strategy="linear", lr=1e-2, augment="none", quiet=True)
# One worker runs the module (loadgroup), so the two biased runs are trained once: the slow-first order in
# conftest.py would otherwise split its tests over both workers.
pytestmark = pytest.mark.xdist_group("fairness_balance")


def write_biased_dataset(root, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for split, per_group in COUNTS.items():
        for group, n in per_group.items():
            for label in ("horizontal", "vertical"):
                for i in range(n):
                    image = rng.normal(120, 25, (32, 32, 3)) + np.array(TINT[SHORTCUT[group, label]])
                    r, c = rng.integers(1, 7, 2) * 2
                    if label == "horizontal":
                        bar = (slice(r + 6, r + 10), slice(c, c + 16))
                    else:
                        bar = (slice(r, r + 16), slice(c + 6, c + 10))
                    image[bar] += 30
                    name = f"{split}/{group}-{label}-{i}.png"
                    (root / split).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(root / name)
                    rows.append([name, label, split, group])
    with open(root / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label", "split", "group"], *rows])
    with open(root / "test.csv", "w", newline="") as handle:  # the acceptance check's shape: path,label,group
        csv.writer(handle).writerows([["path", "label", "group"], *[[p, l, g] for p, l, s, g in rows if s == "test"]])
    return root / "labels.csv", root / "test.csv"


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny head on cached features: one thread is fastest when the cores are shared
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def biased_runs(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("biased")
    labels, test_csv = write_biased_dataset(root)
    before = pixelforge.train(str(labels), out=str(root / "run-none"), **OPTIONS).run_dir
    after = pixelforge.train(str(labels), out=str(root / "run-groups"), balance="groups", **OPTIONS).run_dir
    return labels, test_csv, before, after


@pytest.mark.slow
def test_evaluate_finds_the_gap_and_balance_groups_shrinks_it(biased_runs):
    labels, _, before, after = biased_runs
    gap_before = evaluate(before, data=str(labels), split="test", groups="group").metrics["groups"]
    result = evaluate(after, data=str(labels), split="test", groups="group", compare=before)
    gap_after = result.metrics["groups"]
    assert gap_before["common"]["accuracy"] > 0.9
    assert gap_before["largest_accuracy_gap"] > 0.3
    assert gap_before["summary"]["gaps"]["accuracy"]["lowest"] == "rare"
    assert any(flag.startswith("accuracy gap") for flag in gap_before["summary"]["flags"])
    assert gap_after["largest_accuracy_gap"] < gap_before["largest_accuracy_gap"] / 2
    assert gap_after["rare"]["accuracy"] > gap_before["rare"]["accuracy"] + 0.3
    table = gap_after["summary"]["before_after"]
    assert table["groups"]["rare"]["accuracy_before"] == gap_before["rare"]["accuracy"]
    gaps = [gap_before["largest_accuracy_gap"], gap_after["largest_accuracy_gap"]]
    assert table["overall"]["largest_accuracy_gap"] == gaps
    assert gap_before["rare"]["train_images"] == 16  # how the group was represented in training


@pytest.mark.slow
def test_cli_evaluate_groups_json_has_one_entry_per_group_and_the_gap(biased_runs, cli):
    _, test_csv, before, after = biased_runs
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = cli("evaluate", before, "--data", test_csv, "--groups", "group", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    groups = json.loads(proc.stdout)["groups"]
    for name in ("common", "rare"):
        assert set(groups[name]) >= {"accuracy", "support", "recall", "false_positive_rate", "calibration_error"}
        assert groups[name]["support"] == 80
    assert groups["largest_accuracy_gap"] == pytest.approx(abs(groups["common"]["accuracy"] - groups["rare"]["accuracy"]))
    text = cli("evaluate", after, "--data", test_csv, "--groups", "group", "--compare", before, env=env)
    assert text.returncode == 0, text.stderr
    assert "groups by 'group':" in text.stdout and "before (" in text.stdout and "-> after:" in text.stdout


@pytest.mark.slow
def test_runs_on_grouped_data_report_groups_in_report_and_model_card(biased_runs):
    _, _, before, _ = biased_runs
    assert "Fairness across groups (group)" in (before / "report.html").read_text()
    card = (before / "model_card.md").read_text()
    assert "Images per group (`group`) and split:" in card
    assert "| rare | 16 | 2 | 80 |" in card
    assert "| group | support | accuracy | 95% CI |" in card


def test_balance_groups_without_a_group_column_fails_before_a_run_folder_exists(shapes_dir, tmp_path):
    with pytest.raises(PixelforgeError, match="no group column 'group'"):
        pixelforge.train(str(shapes_dir), model="simple_cnn", weights="none", balance="groups", out=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_unknown_balance_value_names_the_key():
    with pytest.raises(PixelforgeError, match="balance"):
        pixelforge.train("shapes", balance="everything")
