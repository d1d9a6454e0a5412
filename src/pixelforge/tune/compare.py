"""Compare run folders (any runs, or a study's trials): what differs in their configs, their best metrics, time and
speed, and their training curves overlaid in one PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd

_NOT_SETTINGS = {"out", "quiet"}  # where and how loudly a run wrote, not what it trained


@dataclass
class RunRow:
    run: Path
    config: dict
    summary: dict
    metrics: list[dict]

    @property
    def monitor(self) -> str:
        return self.summary.get("monitor") or "val_loss"


def expand(paths: list[Path]) -> list[Path]:
    """Run folders from the arguments: a run folder as it is; a study folder (study.db) as its trials, in order."""
    runs = []
    for path in paths:
        if (path / "study.db").exists() or (path / "trials").is_dir():
            trials = sorted((p for p in (path / "trials").iterdir() if (p / "config.yaml").exists()),
                            key=lambda p: (len(p.name), p.name))
            runs += trials
        elif (path / "config.yaml").exists():
            runs.append(path)
        else:
            raise PixelforgeError(f"{path}: neither a run folder (config.yaml) nor a study folder (study.db)")
    if not runs:
        raise PixelforgeError(f"{', '.join(map(str, paths))}: no run folders to compare")
    return runs


def load(run: Path) -> RunRow:
    config = yaml.safe_load((run / "config.yaml").read_text()) or {}
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    metrics = rd.read_metrics(run / "metrics.csv") if (run / "metrics.csv").exists() else []
    return RunRow(run, config, summary, metrics)


def differing_keys(rows: list[RunRow]) -> list[str]:
    """The settings that differ, among those every run has: a key only one task has (a detector's `arch` beside a
    classifier) is not a setting the runs differ in; their `task` is."""
    keys = sorted(set.intersection(*(set(r.config) for r in rows)) - _NOT_SETTINGS) if rows else []
    return [k for k in keys if len({repr(r.config.get(k)) for r in rows}) > 1]


def transposed(header: list[str], body: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """The table with a column per run and a row per setting: readable when the runs differ in many settings."""
    return ["", *(row[0] for row in body)], [[name, *(row[i] for row in body)] for i, name in enumerate(header) if i]


def table(rows: list[RunRow]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the comparison: run, differing config keys, best monitor, epochs, seconds, images/s."""
    diff = differing_keys(rows)
    header = ["run", *diff, "best", "best epoch", "epochs run", "seconds", "images/s"]
    body = []
    for r in rows:
        s = r.summary
        best = s.get("best_metric")
        body.append([_name(r.run), *(_fmt(r.config.get(k)) for k in diff),
                     f"{r.monitor} {best:.4f}" if isinstance(best, (int, float)) else "unfinished",
                     str(s.get("best_epoch", "")), str(len(r.metrics)),
                     _fmt(s.get("seconds_total") or s.get("seconds_training")), _fmt(s.get("images_per_s"))])
    return header, body


def _name(run: Path) -> str:
    return f"{run.parent.parent.name}/{run.name}" if run.parent.name == "trials" else run.name


def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot_curves(rows: list[RunRow], out: Path) -> Path:
    """Two panels: the validation monitor and the training loss per epoch, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    monitors = {r.monitor for r in rows}
    for r in rows:
        epochs = [m["epoch"] for m in r.metrics]
        label = _name(r.run)
        left.plot(epochs, [m.get(r.monitor) for m in r.metrics], marker=".", label=label)
        right.plot(epochs, [m.get("train_loss") for m in r.metrics], marker=".", label=label)
    left.set(title="validation: " + ", ".join(sorted(monitors)), xlabel="epoch")
    right.set(title="train_loss", xlabel="epoch")
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    if len(rows) <= 12:
        right.legend(fontsize=8)
    fig.tight_layout()
    rd.atomic_write_bytes(out, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return out
