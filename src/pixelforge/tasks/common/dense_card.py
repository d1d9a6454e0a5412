"""`model_card.md` for detection, segmentation and instance runs: what the model is, its data, its scores, its cost.

A shorter sibling of `model_card.py` (Mitchell et al. 2019): intended use, data counts, training setup, the
metrics of the run's own latest evaluation (`RUN/eval-test/metrics.json` once `pixelforge evaluate` has scored the
test split, else the validation metrics the report computed, `RUN/eval-val/metrics.json`), limitations written from the numbers (small
validation sets, weak classes), and compute. Per-group fairness sections stay classification's for now.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from pixelforge.data.sources import card_name
from pixelforge.runs import folder as rd
from pixelforge.runs.card_file import write_card
from pixelforge.tasks.common.card import latest_evaluation



# Refreshed after each evaluation even in a card the user edited; "Limitations" and the title block are theirs.
MEASURED_SECTIONS = ("Model", "Data", "Training", "Evaluation metrics", "Compute")


def write_dense_card(run: Path, task, peak_memory: dict | None = None) -> Path:
    """`task` (a `DenseTask`) names itself (`title`), its headline metrics and what its per-class values are."""
    from pixelforge.tasks.config import load_config

    cfg = load_config(run / "config.yaml")
    classes = rd.read_json(run / "classes.json")
    summary = rd.read_json(run / "summary.json")
    # The test split's once `evaluate` scored it (evaluate rewrites this card), else what training's report measured.
    folder, metrics = latest_evaluation(run) or ("eval-val", {})
    lines = [
        f"# Model card: {run.name}",
        "",
        f"Written {datetime.date.today().isoformat()} by pixelforge.",
        "",
        "## Model",
        f"- Task: {task.title} (`--task {cfg.task}`), architecture `{cfg.arch or 'default'}` "
        f"on encoder `{cfg.model}` (weights: {cfg.weights}).",
        f"- Classes ({len(classes)}): {', '.join(classes)}.",
        f"- Intended use: {task.title} of images like the training data (`{card_name(cfg.data)}`). "
        "Not evaluated on other domains.",
        "",
        "## Data",
        f"- {summary.get('train_images')} training and {summary.get('val_images')} validation images; "
        f"{len(summary.get('unreadable_images') or [])} unreadable images skipped.",
        "",
        "## Training",
        f"- {summary.get('epochs_run')} epochs at {cfg.img_size} px, batch {cfg.batch_size}, strategy {cfg.strategy}, "
        f"{cfg.optimizer} lr {summary.get('lr')}, {cfg.schedule} schedule, augment {cfg.augment}, seed {cfg.seed}.",
        f"- Best `{summary.get('monitor')}` {_fmt(summary.get('best_metric'))} at epoch {summary.get('best_epoch')}.",
        "",
        "## Evaluation metrics",
    ]
    lines += _metric_lines(task, metrics, folder)
    lines += ["", "## Limitations"] + _limitations(summary, metrics)
    compute = [f"- Training time {summary.get('seconds_training')} s"]
    if peak_memory:
        compute.append("- Peak memory: " + ", ".join(f"{k} {v}" for k, v in peak_memory.items()))
    lines += ["", "## Compute"] + compute
    return write_card(run / "model_card.md", "\n".join(lines), MEASURED_SECTIONS)  # edits kept: runs/card_file.py


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "n/a"


def _per_class(metrics: dict) -> dict:
    return metrics.get("per_class_iou") or metrics.get("per_class") or {}


def _metric_lines(task, metrics: dict, folder: str) -> list[str]:
    if not metrics:
        return ["- No evaluation metrics were written (see report.html, or run `pixelforge evaluate RUN`)."]
    split = metrics.get("split") or folder.removeprefix("eval-")
    count = f", {metrics['num_images']} images" if metrics.get("num_images") is not None else ""
    lines = [f"On the **{split}** split{count}, best checkpoint (`{folder}/metrics.json`).", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {key} | {_fmt(metrics.get(key))} |" for key in task.headline_metrics if key in metrics]
    per_class = _per_class(metrics)
    if per_class:
        lines += ["", f"| class | {task.per_class_metric} |", "|---|---|"]
        lines += [f"| {name} | {_fmt(value)} |" for name, value in per_class.items()]
    return lines


def _limitations(summary: dict, metrics: dict) -> list[str]:
    notes = []
    val_images = summary.get("val_images") or 0
    if val_images < 100:
        notes.append(f"- The validation set is small ({val_images} images): its scores can move by several points "
                     "between splits.")
    scored = {k: v for k, v in _per_class(metrics).items() if isinstance(v, (int, float)) and v >= 0}
    if scored:
        worst = min(scored, key=scored.get)
        notes.append(f"- Weakest class: {worst} ({_fmt(scored[worst])}).")
    return notes or ["- None found in the numbers; check the report's gallery for systematic errors."]
