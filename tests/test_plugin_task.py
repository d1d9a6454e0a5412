"""A task registered from outside pixelforge trains, evaluates and predicts through the public API.

The toy task regresses an image's mean brightness, with its own config key (`hidden`), a "lower is better"
monitor and its own evaluate/predict; nothing in pixelforge's source knows it exists. If any layer still chose
behaviour by task name, or assumed classification's batches or "higher is better", this test would fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import Field

import pixelforge
from pixelforge.config import RunConfig
from pixelforge.engine.setup import TaskSetup
from pixelforge.runs import folder as rd
from pixelforge.runs.result import EvalResult
from pixelforge.tasks.base import Task
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.registry import get_task, register_task, unregister_task


class BrightnessConfig(RunConfig):
    task: Literal["toy-brightness"] = "toy-brightness"
    hidden: int = Field(8, ge=1, description="hidden units of the toy regressor")


def _load(paths) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255.0)[None]
                        for p in paths])


def _model(hidden: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))


class BrightnessTask(Task):
    name = "toy-brightness"
    config_class = BrightnessConfig
    defaults = {"epochs": 4, "batch_size": 8, "lr": 3e-2, "weights": "none", "strategy": "full", "warmup_epochs": 0}
    monitor, monitor_mode = "val_mae", "min"

    def prepare_data(self, cfg):
        files = sorted(Path(cfg.data).glob("*.png"))
        return {"train": files[::2], "val": files[1::2]}, []

    def build_setup(self, cfg, source, classes, fabric, progress):
        model = _model(cfg.hidden)
        data = {split: list(zip(_load(files), _load(files).mean(dim=(1, 2, 3)))) for split, files in source.items()}
        return TaskSetup(task=self, model=model, trained=model, train_data=data["train"], val_data=data["val"],
                         n_train=len(data["train"]), n_val=len(data["val"]),
                         param_groups=lambda lr: [{"params": list(model.parameters()), "lr": lr}])

    def training_step(self, model, batch):
        x, y = batch
        error = model(x).squeeze(1) - y
        return {"loss": (error ** 2).mean(), "count": len(x), "mae": error.abs().mean().detach()}

    def validate(self, model, batches, fabric):
        total, count = torch.zeros(()), 0
        for x, y in batches:
            total, count = total + (model(x).squeeze(1) - y).abs().sum(), count + len(x)
        mae = float(total) / max(count, 1)
        return {"val_loss": mae, "val_mae": mae}

    def _trained(self, run: Path):
        from pixelforge.tasks.config import load_config

        model = _model(load_config(run / "config.yaml").hidden)
        model.load_state_dict(rd.load_checkpoint(run / "checkpoints" / "best.ckpt")["model"])
        return model.eval()

    def evaluate(self, run, *, data=None, split=None, out=None, **options):
        files = sorted(Path(data).glob("*.png"))
        x = _load(files)
        with torch.no_grad():
            mae = float((self._trained(run)(x).squeeze(1) - x.mean(dim=(1, 2, 3))).abs().mean())
        return EvalResult({"mae": mae, "num_images": len(files)}, out or run, {}, [])

    def predict(self, run, paths, *, out=None, **options):
        with torch.no_grad():
            values = self._trained(run)(_load(paths)).squeeze(1).tolist()
        return [{"path": str(p), "brightness": v} for p, v in zip(paths, values)]


@pytest.fixture
def brightness_task():
    register_task(BrightnessTask)
    yield BrightnessTask
    unregister_task(BrightnessTask.name)


@pytest.fixture
def gray_images(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "gray"
    folder.mkdir()
    for i in range(48):
        level = rng.uniform(20, 235)
        pixels = np.clip(rng.normal(level, 20, (8, 8)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    return folder


def test_a_task_registered_from_outside_trains_evaluates_and_predicts_through_the_api(brightness_task, gray_images, tmp_path):
    result = pixelforge.train(str(gray_images), task="toy-brightness", hidden=16, out=str(tmp_path / "run"), quiet=True)
    rows = rd.read_metrics(result.run_dir / "metrics.csv")
    assert result.monitor == "val_mae" and len(rows) == 4
    assert "train_mae" in rows[0]  # every scalar the step returns is logged
    assert result.best_metric == min(r["val_mae"] for r in rows)  # "lower is better" picked best.ckpt
    assert rows[-1]["val_mae"] < rows[0]["val_mae"]

    metrics = pixelforge.evaluate(result.run_dir, data=str(gray_images)).metrics
    assert metrics["num_images"] == 48 and metrics["mae"] < 0.2

    images = sorted(gray_images.glob("*.png"))[:3]
    predictions = pixelforge.predict(result.run_dir, images)
    assert [Path(p["path"]).name for p in predictions] == [p.name for p in images]
    assert all(0.0 <= p["brightness"] <= 1.2 for p in predictions)


def test_the_task_s_own_keys_are_validated_and_other_tasks_keys_refused(brightness_task, gray_images, tmp_path):
    with pytest.raises(pixelforge.PixelforgeError, match="hidden: Input should be greater than or equal to 1"):
        pixelforge.train(str(gray_images), task="toy-brightness", hidden=0, out=str(tmp_path / "a"))
    with pytest.raises(pixelforge.PixelforgeError, match="balance: .*not an option of task 'toy-brightness'"):
        pixelforge.train(str(gray_images), task="toy-brightness", balance="classes", out=str(tmp_path / "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_registering_a_name_twice_is_refused(brightness_task):
    class Impostor(Task):
        name = "toy-brightness"

    with pytest.raises(ValueError, match="already registered"):
        register_task(Impostor)


def test_architecture_md_s_outside_task_example_trains_as_written(tmp_path, monkeypatch, capsys):
    """The page only told how to add a task inside the package (and not what prepare_data returns or that the
    step needs training_step/validate/monitor); its outside example must keep working as a new user copies it."""
    import re
    import runpy

    page = (Path(__file__).resolve().parents[1] / "ARCHITECTURE.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert blocks, "ARCHITECTURE.md lost its outside-the-package example"
    (tmp_path / "brightness.py").write_text(blocks[0])
    monkeypatch.chdir(tmp_path)
    try:
        runpy.run_path("brightness.py", run_name="__main__")
    finally:
        unregister_task("brightness")
    assert (tmp_path / "runs" / "brightness" / "checkpoints" / "best.ckpt").is_file()
    assert len(rd.read_metrics(tmp_path / "runs" / "brightness" / "metrics.csv")) == 2
    # The plain `pixelforge` command reaches the task once PIXELFORGE_PLUGINS names its module.
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           "PIXELFORGE_PLUGINS": "brightness"}
    command = [sys.executable, "-m", "pixelforge", "train", "--data", "gray", "--task", "brightness", "--hidden", "4",
               "--epochs", "1", "--out", "runs/cli", "--quiet"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "best val_mae" in done.stdout and (tmp_path / "runs" / "cli" / "checkpoints" / "best.ckpt").is_file()


def test_a_plugin_module_that_cannot_be_imported_is_one_warning_and_the_task_stays_unknown(caplog):
    from pixelforge.tasks.registry import import_plugins

    with caplog.at_level("WARNING", logger="pixelforge"):
        import_plugins(" no_such_plugin_module , ")
    assert "PIXELFORGE_PLUGINS: cannot import 'no_such_plugin_module' (ModuleNotFoundError" in caplog.text
    with pytest.raises(PixelforgeError, match="unknown task 'nope'.*name the module in PIXELFORGE_PLUGINS"):
        get_task("nope")
