"""`tune --retrain-best`: the study's answer trained once more, on train+val, and scored on data no trial saw.

The trials chose their hyper-parameters on val, so val's score is optimistic; the retrain adds val's images to
training (a task whose config has `train_on_val`, when the data has a test split) for as many epochs as the best
trial needed to peak, and scores the test split. Without a test split (or for a task that cannot train on val)
it trains on train as the trials did and scores the task's held-out split, and says which.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd
from pixelforge.tasks.config import build_config
from pixelforge.tasks.registry import get_task

log = logging.getLogger("pixelforge")
FOLDER = "best-retrained"


def retrain_best(out: Path, best_run: str | Path | None) -> dict:
    """Train OUT/best.yaml in OUT/best-retrained/ (train+val when there is a test split) and evaluate it.

    A finished OUT/best-retrained/ is evaluated again, not retrained; an interrupted one (in its epochs or its report)
    is resumed.

    Example:
        >>> retrain_best(Path("runs/tune-digits"), "runs/tune-digits/trials/3")  # doctest: +SKIP
        {'run': 'runs/tune-digits/best-retrained', 'trained_on': 'train+val', 'scored_on': 'test', ...}
    """
    from pixelforge.api.evaluate import evaluate
    from pixelforge.api.train import train

    best = out / "best.yaml"
    if not best.exists() or best_run is None:
        raise PixelforgeError(f"{best}: no complete trial yet, nothing to retrain")
    cfg = build_config(best)
    plan = _plan(cfg, Path(best_run))
    run = out / FOLDER
    if (run / "checkpoints" / "last.ckpt").exists():  # a finished run is left as it is (train says so); one cut
        train(resume=run, quiet=True)  # in its epochs or its report (summary.json written, report.html not) finishes
    else:
        train(config=best, out=str(run), quiet=True, **plan["overrides"])
    scored = evaluate(run, split=plan["scored_on"])
    split = scored.metrics.get("split", plan["scored_on"])
    note = _note(plan["why"], split)
    log.info("retrained on %s, scored on %s%s", plan["trained_on"], split, f": {note}" if note else "")
    return {"run": str(run), "trained_on": plan["trained_on"], "scored_on": split,
            "epochs": plan["overrides"].get("epochs", cfg.epochs), "note": note,
            "metrics": {k: v for k, v in scored.metrics.items() if isinstance(v, (int, float)) and
                        not isinstance(v, bool)}}


def check_can_retrain(config: Path, overrides: dict | None = None) -> None:
    """Before any trial: a task with no evaluation (style) would train the retrain and then fail to score it."""
    from pixelforge.tasks.base import Task

    cfg = build_config(config, **(overrides or {}))
    if type(get_task(cfg.task)).evaluate is Task.evaluate:
        raise PixelforgeError(f"--retrain-best: task {cfg.task!r} has no evaluation to score a retrained model on; "
                              f"leave the flag out (pixelforge train --config OUT/best.yaml trains the best again)")


def _plan(cfg, best_run: Path) -> dict:
    """What to train on, for how many epochs, and which split scores it."""
    if "train_on_val" in type(cfg).model_fields:  # the task can fold val into training
        source, _ = get_task(cfg.task).prepare_data(cfg)
        if source.split("test"):
            # Val no longer judges epochs (it is trained on), so train as long as the best trial took to peak.
            summary = rd.read_json(best_run / "summary.json") if (best_run / "summary.json").exists() else {}
            epochs = summary.get("best_epoch") or cfg.epochs
            return {"overrides": {"train_on_val": True, "epochs": int(epochs)}, "trained_on": "train+val",
                    "scored_on": "test", "why": None}
        why = "the data has no test split"
    else:
        why = f"task {cfg.task!r} cannot train on its validation split"
    return {"overrides": {}, "trained_on": "train", "scored_on": None, "why": why}


def _note(why: str | None, split: str | None) -> str | None:
    """Why it trained on train alone, and what its score is worth: the evaluation's own held-out split is the test
    split where the data has one (segment's `test_fraction`), which no trial saw; else the split that chose."""
    if why is None:
        return None
    if split == "test":
        return f"{why}, so it trained on train as the trials did; it is scored on the test split, which no trial saw"
    if split is None:  # an evaluation without splits (a GAN's FID against every real image): as the trials were
        return (f"{why}, so it trained as the trials did and is scored as they were, on the images that chose the "
                f"hyper-parameters (an optimistic score)")
    return (f"{why}, so it trained on train as the trials did and is scored on the {split} split, which also chose "
            f"the hyper-parameters (an optimistic score)")
