"""A run's continual sequence, measured: the accuracy matrix over its lineage, and the end-of-step work.

Row i of the matrix is step i's run scored on the test images (the val split where a task's data has no test
split) of every task up to i, choosing among all the classes it knows (class-incremental: no task id at test
time). Each continual run keeps its matrix in RUN/continual.json, so a step only scores its own row; a parent
without one (the first task) is scored once, by its child.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pixelforge.metrics.continual import sequence_metrics
from pixelforge.runs import folder as rd
from pixelforge.tasks.classify.continual.lineage import read_lineage

CONTINUAL_FILE = "continual.json"
MATRIX_PNG = "continual_matrix.png"


def test_samples(step: dict) -> list:
    """Task `step`'s held-out images, as its run split them: test, else val."""
    from pixelforge.runs.files import held_out_split
    from pixelforge.tasks.classify.task import prepare_data
    from pixelforge.tasks.config import load_config

    source, _ = prepare_data(load_config(Path(step["run"]) / "config.yaml"))
    return source.split(held_out_split(source, None, own_data=True))


def seen_test_samples(run: Path) -> list:
    """The held-out images of every task in `run`'s lineage: all the classes it has seen."""
    return [s for step in read_lineage(run) for s in test_samples(step)]


def accuracy_row(run: Path, steps: list[dict]) -> list[float]:
    """`run`'s accuracy on each of `steps`' test images."""
    from pixelforge.tasks.classify.inference import load_run, run_inference

    loaded = load_run(run)
    index = {c: i for i, c in enumerate(loaded.classes)}
    row = []
    for step in steps:
        logits, kept, _ = run_inference(loaded, test_samples(step), calibrated=False)
        targets = torch.tensor([index[s.label] for s in kept])
        row.append(round(float((logits.argmax(1) == targets).float().mean()), 4) if len(kept) else None)
    return row


def sequence_matrix(run: Path) -> list[list[float | None]]:
    """The lower-triangular accuracy matrix of `run`'s lineage (rows kept by earlier steps are reused)."""
    steps = read_lineage(run)
    rows = []
    for i, step in enumerate(steps):
        saved = Path(step["run"]) / CONTINUAL_FILE
        known = rd.read_json(saved)["accuracy_matrix"] if saved.exists() and i < len(steps) - 1 else []
        row = known[i] if len(known) > i else accuracy_row(Path(step["run"]), steps[:i + 1])
        rows.append(list(row[:i + 1]) + [None] * (len(steps) - i - 1))
    return rows


def task_names(steps: list[dict]) -> list[str]:
    # A step of known classes only (new images of old classes, domain-incremental) was a bare "4: " on the heat map.
    return [f"{i + 1}: {','.join(step['new_classes'][:4]) or 'no new classes'}" for i, step in enumerate(steps)]


def finish_step(run: Path, cfg) -> str:
    """After a continual step: lineage.json, the carry for the next step, continual.json and its heat map."""
    from pixelforge.tasks.classify.continual.carry import store_carry
    from pixelforge.tasks.classify.continual.lineage import write_lineage
    from pixelforge.viz.continual import plot_accuracy_matrix

    run = Path(run)
    steps = write_lineage(run, cfg, rd.read_json(run / "classes.json"))
    store_carry(run, cfg)
    metrics = sequence_metrics(sequence_matrix(run))
    rd.write_json(run / CONTINUAL_FILE, {"strategy": cfg.continual, "tasks": task_names(steps), **metrics})
    plot_accuracy_matrix(metrics["accuracy_matrix"], run / MATRIX_PNG,
                         f"{cfg.continual}: average accuracy {metrics['avg_accuracy']:.3f}", task_names(steps))
    bwt = metrics["bwt"]
    return (f"continual ({cfg.continual}) step {len(steps)}: average accuracy {metrics['avg_accuracy']:.4f}, "
            f"BWT {bwt:+.4f}, forgetting {metrics['forgetting']:.4f}; {run / MATRIX_PNG}")
