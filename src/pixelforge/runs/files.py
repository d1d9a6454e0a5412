"""What every task's evaluation reads first: a run's config, classes and checkpoint, and which split to score."""

from __future__ import annotations

from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.errors import PixelforgeError
from pixelforge.formats import check_format



def run_task_name(run_dir: str | Path) -> str:
    """The task a run folder was trained for, from its config.yaml (runs from before tasks existed: classify)."""
    import yaml

    run = rd.require_run(run_dir)
    try:
        values = yaml.safe_load((run / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PixelforgeError(f"{run / 'config.yaml'}: unreadable ({exc})") from None
    if isinstance(values, dict):  # a task a newer pixelforge added is its upgrade's to say, not "unknown task"
        check_format(run / "config.yaml", values, "run")
    return values.get("task") or "classify"


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
