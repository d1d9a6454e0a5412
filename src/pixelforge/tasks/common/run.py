"""Reading a trained run back for evaluation, prediction and export: its config (as the task's class), classes and
checkpoint."""

from __future__ import annotations

from pathlib import Path

from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd
from pixelforge.tasks.config import load_config
from pixelforge.tasks.registry import get_task


def read_run(run_dir: str | Path, task: str, checkpoint: str = "best.ckpt") -> tuple[Path, object, list[str], dict]:
    """(run folder, config, classes, checkpoint dict) of a `task` run; one-line errors for anything else.

    A run interrupted before its first epoch ended has only last.ckpt; that one is used then, with a warning.
    """
    run = rd.require_run(run_dir)
    cfg = load_config(run / "config.yaml")
    if not isinstance(cfg, get_task(task).config_class):  # a detector's run handed to segmentation, say
        raise PixelforgeError(f"{run}: a {cfg.task!r} run, not a {task!r} run")
    return run, cfg, rd.read_json(run / "classes.json"), rd.load_checkpoint(rd.trained_checkpoint(run, checkpoint))
