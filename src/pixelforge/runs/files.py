"""What every task's evaluation reads first: a run's config, classes and checkpoint, and which split to score."""

from __future__ import annotations

from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.errors import PixelforgeError



def run_task_name(run_dir: str | Path) -> str:
    """The task a run folder was trained for, from its config.yaml (runs from before tasks existed: classify)."""
    import yaml

    run = rd.require_run(run_dir)
    try:
        values = yaml.safe_load((run / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PixelforgeError(f"{run / 'config.yaml'}: unreadable ({exc})") from None
    return values.get("task") or "classify"


def read_run(run_dir: str | Path, task: str, checkpoint: str = "best.ckpt") -> tuple[Path, object, list[str], dict]:
    """(run folder, TrainConfig, classes, checkpoint dict) of a `task` run; one-line errors for anything else.

    A run interrupted before its first epoch ended has only last.ckpt; that one is used then.
    """
    from pixelforge.config import load_config

    run = rd.require_run(run_dir)
    cfg = load_config(run / "config.yaml")
    if cfg.task != task:
        raise PixelforgeError(f"{run}: a {cfg.task!r} run, not a {task!r} run")
    path = run / "checkpoints" / checkpoint
    if not path.exists() and (run / "checkpoints" / "last.ckpt").exists():
        path = run / "checkpoints" / "last.ckpt"
    return run, cfg, rd.read_json(run / "classes.json"), rd.load_checkpoint(path)


def held_out_split(source, split: str | None, own_data: bool) -> str:
    """The split to score: `split` when given; else test, then val (then train); "all" for data without splits.

    On the run's own data (`own_data`) there is always a val split, carved out at training.
    """
    if split:
        return split
    if own_data:
        return "test" if source.split("test") else "val"
    if not source.has_splits:
        return "all"
    return "test" if source.split("test") else "val" if source.split("val") else "train"
