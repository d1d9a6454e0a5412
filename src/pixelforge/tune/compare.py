"""Compare run folders (any runs, or a study's trials): what differs in their configs, their best metrics, time and
speed, and their training curves overlaid in one PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd
from pixelforge.formats import RUN_STAMP_KEYS

# where and how loudly a run wrote, and which pixelforge wrote it, not what it trained
_NOT_SETTINGS = {"out", "quiet", *RUN_STAMP_KEYS}


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
                            key=lambda p: (len(p.name), p.name)) if (path / "trials").is_dir() else []
            if not trials:  # left out silently, the table looked complete without it
                raise PixelforgeError(f"{path}: a study folder without trial run folders (no trial has started)")
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


def training_losses(row: RunRow) -> list[str]:
    """The run's training-loss columns: `train_loss`, or a task's several (a GAN's train_loss_d, train_loss_g)."""
    columns = list(row.metrics[0]) if row.metrics else []
    return ["train_loss"] if "train_loss" in columns else [c for c in columns if c.startswith("train_loss")]


def curve_panels(rows: list[RunRow]) -> list[tuple[str, list[tuple[str, list, list]]]]:
    """[(title, [(label, epochs, values)])]: a panel per validation monitor, so runs of tasks whose monitors differ
    (accuracy in 0-1 beside a FID of hundreds) each get an axis of their own, then one of the training losses."""
    panels: dict[str, list] = {}
    for r in rows:
        panels.setdefault(f"validation: {r.monitor}", []).append(
            (_name(r.run), [m["epoch"] for m in r.metrics], [m.get(r.monitor) for m in r.metrics]))
    losses = []
    for r in rows:
        columns = training_losses(r)
        for column in columns:
            label = _name(r.run) + ("" if len(columns) == 1 else f" {column.removeprefix('train_loss_')}")
            losses.append((label, [m["epoch"] for m in r.metrics], [m.get(column) for m in r.metrics]))
    names = sorted({c for r in rows for c in training_losses(r)})
    return [*panels.items(), *([(", ".join(names), losses)] if losses else [])]


def plot_curves(rows: list[RunRow], out: Path) -> Path:
    """The panels of `curve_panels` side by side, one line per run (and per loss of a run with several)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from pixelforge.viz.plots import direction_of

    panels = curve_panels(rows)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels):
        for label, epochs, values in lines:
            ax.plot(epochs, values, marker=".", label=label)
        columns = [c.strip() for c in title.removeprefix("validation: ").split(",")]
        direction = direction_of(columns)  # the y axis says what is drawn and which way is better
        ax.set(title=title, xlabel="epoch", ylabel=", ".join(columns) + (f" ({direction})" if direction else ""))
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        if len(lines) <= 12:
            ax.legend(fontsize=8)
    fig.tight_layout()
    rd.atomic_write_bytes(out, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return out
