"""Continual learning end to end on split-digits (16 px simple_cnn): a 2-task sequence through the public API,
a resumed EWC step, the evaluation over every class seen, and the drift check on same vs shifted images."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

import pixelforge
from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd

# One worker runs the module (loadgroup), so its task sequence (two trainings) is built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("continual_run")]

TINY = dict(model="simple_cnn", weights="none", img_size=16, strategy="full", precision="32", lr=3e-3,
            batch_size=16, workers=0, calibrate=False, quiet=True)


def _snapshot(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    from pixelforge.data.split_digits import write_split_digits

    root = tmp_path_factory.mktemp("continual")
    tasks = write_split_digits(root / "split", tasks=5)
    parent = pixelforge.train(str(tasks[0]), out=str(root / "task1"), epochs=2, **TINY).run_dir
    before = _snapshot(parent)
    child = pixelforge.train(str(tasks[1]), continue_from=str(parent), continual="replay", memory=20, epochs=1,
                             out=str(root / "task2")).run_dir
    return tasks, parent, before, child


def test_split_digits_has_two_new_classes_a_task_with_all_splits(sequence):
    tasks = sequence[0]
    assert [t.name for t in tasks] == ["task1", "task2", "task3", "task4", "task5"]
    classes = [sorted(p.name for p in (t / "train").iterdir()) for t in tasks]
    assert classes == [["0", "1"], ["2", "3"], ["4", "5"], ["6", "7"], ["8", "9"]]
    assert all(sorted(p.name for p in t.iterdir()) == ["test", "train", "val"] for t in tasks)


def test_continual_step_grows_the_head_records_lineage_and_leaves_the_parent_untouched(sequence):
    tasks, parent, before, child = sequence
    assert _snapshot(parent) == before
    cfg = rd.read_json(child / "lineage.json")
    assert [s["new_classes"] for s in cfg["steps"]] == [["0", "1"], ["2", "3"]] and cfg["strategy"] == "replay"
    assert rd.read_json(child / "classes.json") == ["0", "1", "2", "3"]
    saved = rd.load_checkpoint(child / "checkpoints" / "best.ckpt")
    assert saved["model"]["head.1.weight"].shape[0] == 4
    assert "img_size: 16" in (child / "config.yaml").read_text()  # not given: the parent's
    trained_with = saved["task_state"]["memory"]["slots"]  # the memory replayed in this step: the old classes
    assert {k: len(v) for k, v in trained_with.items()} == {"0": 10, "1": 10}
    carried = saved["task_state"]["carry"]["memory"]["slots"]  # handed to the next step: every class, rebalanced
    assert {k: len(v) for k, v in carried.items()} == {"0": 5, "1": 5, "2": 5, "3": 5}


def test_evaluate_scores_every_class_seen_and_reports_the_matrix(sequence):
    tasks, _, _, child = sequence
    metrics = json.loads(json.dumps(pixelforge.evaluate(child).to_json()))  # what `evaluate RUN --json` prints
    assert metrics["split"] == "seen-classes"
    assert metrics["num_images"] == sum(1 for t in tasks[:2] for _ in (t / "test").rglob("*.png"))
    assert sorted(metrics["per_class"]) == ["0", "1", "2", "3"]
    matrix = metrics["continual"]["accuracy_matrix"]
    assert matrix[0][1] is None and len(matrix) == 2
    assert metrics["continual"]["avg_accuracy"] == pytest.approx((matrix[1][0] + matrix[1][1]) / 2)
    assert (child / "continual_matrix.png").stat().st_size > 0


def test_a_gradual_step_unfreezes_the_backbone_as_a_first_run_does(sequence, tmp_path):
    """`--strategy gradual` in a continual step kept the backbone frozen for every epoch (it had no unfreezing hook)."""
    tasks, parent, _, _ = sequence
    child = pixelforge.train(str(tasks[1]), continue_from=str(parent), strategy="gradual", epochs=2,
                             out=str(tmp_path / "gradual")).run_dir
    before = rd.load_checkpoint(parent / "checkpoints" / "last.ckpt")["model"]
    after = rd.load_checkpoint(child / "checkpoints" / "last.ckpt")["model"]
    weights = [k for k, v in before.items() if k.startswith("backbone.") and v.ndim > 1]
    assert weights and any(not torch.equal(before[k], after[k]) for k in weights)  # the top stage learnt in epoch 2


def test_a_linear_step_trains_only_the_head_on_the_parents_frozen_backbone_and_says_so(sequence, tmp_path, caplog):
    """--strategy linear in a step is honoured as "train only the head", and the step says so as it starts."""
    import logging

    tasks, parent, _, _ = sequence
    caplog.set_level(logging.INFO, logger="pixelforge")
    child = pixelforge.train(str(tasks[1]), continue_from=str(parent), strategy="linear", epochs=1,
                             out=str(tmp_path / "linear")).run_dir
    before = rd.load_checkpoint(parent / "checkpoints" / "best.ckpt")["model"]
    after = rd.load_checkpoint(child / "checkpoints" / "best.ckpt")["model"]
    backbone = [k for k in before if k.startswith("backbone.")]
    assert any("running_mean" in k for k in backbone)  # batch-norm statistics are kept as well as the weights
    assert all(torch.equal(before[k], after[k]) for k in backbone)
    assert after["head.1.weight"].shape[0] == 4 and not torch.equal(after["head.1.weight"][:2], before["head.1.weight"])
    assert f"strategy linear: {parent}'s backbone stays frozen" in caplog.text


def test_a_step_reads_its_config_file_over_its_parent_and_drops_the_parents_unread_keys(sequence, tmp_path):
    """The parent's keys were laid over the step's config file (its `lr` lost), and a parent's `unfreeze_every`
    (trained gradual) was refused in a `--strategy full` step as if the user had typed it."""
    import shutil

    import yaml

    from pixelforge.tasks.config import load_config

    tasks, parent, _, _ = sequence
    gradual = tmp_path / "gradual-parent"  # the same run, as if trained with --strategy gradual --unfreeze-every 2
    shutil.copytree(parent, gradual)
    saved = yaml.safe_load((gradual / "config.yaml").read_text())
    (gradual / "config.yaml").write_text(yaml.safe_dump({**saved, "strategy": "gradual", "unfreeze_every": 2,
                                                        "lr": 0.003}))
    (tmp_path / "step.yaml").write_text("strategy: full\nlr: 0.002\n")
    child = pixelforge.train(str(tasks[1]), config=str(tmp_path / "step.yaml"), continue_from=str(gradual),
                             epochs=1, out=str(tmp_path / "step")).run_dir
    cfg = load_config(child / "config.yaml")
    assert (cfg.strategy, cfg.lr, cfg.unfreeze_every) == ("full", 0.002, 1)
    assert (cfg.model, cfg.img_size) == ("simple_cnn", 16)  # what neither gives is still the parent's
    with pytest.raises(PixelforgeError, match="reads unfreeze_every only with --strategy gradual"):
        pixelforge.train(str(tasks[1]), continue_from=str(gradual), strategy="full", unfreeze_every=3, epochs=1,
                         out=str(tmp_path / "typed"))  # given by the user, it is still refused


class InterruptAt:
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, ctx, outputs):
        if ctx.state.global_step == self.step:
            raise KeyboardInterrupt


def test_an_interrupted_ewc_step_resumes_with_its_fisher_and_memory(sequence, tmp_path):
    tasks, _, _, child = sequence
    out = tmp_path / "ewc"
    with pytest.raises(PixelforgeError, match="resume with"):
        pixelforge.train(str(tasks[2]), continue_from=str(child), continual="ewc", epochs=1, out=str(out),
                         callbacks=[InterruptAt(3)])
    cut = rd.load_checkpoint(out / "checkpoints" / "last.ckpt")["task_state"]
    fisher = cut["ewc"]["fisher"]
    assert fisher["head.1.weight"].shape == (4, 256) and float(fisher["head.1.weight"].sum()) > 0
    pixelforge.train(resume=out)
    saved = rd.load_checkpoint(out / "checkpoints" / "best.ckpt")["task_state"]
    torch.testing.assert_close(saved["ewc"]["fisher"], fisher)
    assert saved["carry"]["ewc"]["fisher"]["head.1.weight"].shape == (6, 256)  # grown for the next step
    assert len(rd.read_json(out / "continual.json")["accuracy_matrix"]) == 3


def test_drift_flags_shifted_images_and_not_same_distribution_ones(sequence, tmp_path):
    from pixelforge.tasks.classify.drift import drift_report

    tasks, parent, _, _ = sequence
    same = drift_report(parent, tasks[0] / "test", permutations=200)
    shifted_dir = tmp_path / "inverted"
    shifted_dir.mkdir()
    for path in sorted((tasks[0] / "test").rglob("*.png")):  # the same digits, white on black became black on white
        Image.fromarray(255 - np.asarray(Image.open(path))).save(shifted_dir / f"{path.parent.name}-{path.name}")
    from typer.testing import CliRunner

    from pixelforge.cli import app

    result = CliRunner().invoke(app, ["data", "drift", str(parent), str(shifted_dir), "--json", "--permutations", "200"])
    assert result.exit_code == 0, result.output
    shifted = json.loads(result.stdout)  # in process: a subprocess would spend ~10 s importing
    assert not same["retrain_advised"] and same["p_value"] > 0.01
    assert shifted["retrain_advised"] and shifted["domain_auc"] > 0.9
    assert set(shifted["predicted_shares"]["new"]) == {"0", "1"}
    with pytest.raises(PixelforgeError, match="not a folder of images"):
        drift_report(parent, tmp_path / "nowhere")


def test_lwf_teacher_is_the_parent_as_it_was_answering_for_its_classes(sequence):
    from pixelforge.engine.fabric import lightning_fabric

    from pixelforge.api.train import _config_with_parent
    from pixelforge.engine.progress import EpochProgress
    from pixelforge.tasks.classify.continual.setup import build_continual_setup
    from pixelforge.tasks.classify.inference import load_run
    from pixelforge.tasks.classify.task import prepare_data

    tasks, _, _, child = sequence
    cfg = _config_with_parent(None, str(tasks[2]), {"continue_from": str(child), "continual": "lwf"})
    source, classes = prepare_data(cfg)
    assert classes == ["0", "1", "2", "3", "4", "5"]
    setup = build_continual_setup(cfg, source, classes, lightning_fabric().Fabric(accelerator="cpu", devices=1), EpochProgress(quiet=True))
    x = torch.stack([setup.train_data[i][0] for i in range(4)])
    parent = load_run(child).model
    with torch.no_grad():
        torch.testing.assert_close(setup.task.old_model(x), parent(x))  # 4 outputs: the parent's classes
        torch.testing.assert_close(setup.model.eval()(x)[:, :4], parent(x))  # the grown model starts as the parent
    assert setup.task.ewc is None and setup.task.memory is None and setup.n_train == len(source.split("train"))
