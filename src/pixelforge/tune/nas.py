"""`nas`: architecture search with NSGA-II (Deb et al. 2002, Optuna's NSGAIISampler) on two objectives, validation
accuracy after a short training (maximise) and latency or FLOPs (minimise).

The space is MobileNetV2/EfficientNet-style (models/nas_net.py): width multiplier, and per stage depth, kernel 3/5,
expansion ratio and squeeze-excitation. Each trial trains `nas_...` (the name is the architecture) as a normal
classify run folder, so every Pareto-optimal model evaluates, exports and serves like any run.
"""

from __future__ import annotations

import html
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from pixelforge.errors import PixelforgeError
from pixelforge.models.nas_net import CHANNELS, Arch
from pixelforge.runs import folder as rd
from pixelforge.tasks.classify.config import ClassifyConfig
from pixelforge.tasks.config import build_config
from pixelforge.tune.report import write_report
from pixelforge.tune.samplers import TrialSeeded
from pixelforge.tune.storage import default_url, open_storage
from pixelforge.tune.study import (check_budget_and_out, give_back_if_full, optimize, sigterm_as_interrupt,
                                   train_trial)

log = logging.getLogger("pixelforge")
WIDTHS, DEPTHS, KERNELS, EXPANSIONS = (0.5, 0.75, 1.0, 1.25), (1, 2, 3), (3, 5), (3, 6)


@dataclass
class NasOptions:
    config: Path
    out: Path
    trials: int | None = 20
    timeout: float | None = None
    latency: str = "onnx"  # or "flops"
    seed: int | None = None
    population: int = 8
    storage: str | None = None
    study: str | None = None
    overrides: dict | None = None


def sample_arch(trial: optuna.Trial) -> Arch:
    stages = range(len(CHANNELS))
    return Arch(trial.suggest_categorical("width", WIDTHS),
                tuple(trial.suggest_categorical(f"depth{i}", DEPTHS) for i in stages),
                tuple(trial.suggest_categorical(f"kernel{i}", KERNELS) for i in stages),
                tuple(trial.suggest_categorical(f"expand{i}", EXPANSIONS) for i in stages),
                tuple(int(trial.suggest_categorical(f"se{i}", (0, 1))) for i in stages))


class _NasObjective:
    def __init__(self, opts: NasOptions):
        self.opts = opts

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        from pixelforge.models.classifier import build_classifier
        from pixelforge.tune.latency import measure

        give_back_if_full(trial, self.opts.trials)
        arch = sample_arch(trial)
        trial.set_user_attr("model", arch.name)
        result = train_trial(trial, trial.params, config=self.opts.config,
                             **{**(self.opts.overrides or {}), "model": arch.name, "weights": "none",
                                "strategy": "full", "quiet": True, "out": str(self.opts.out / "trials" / str(trial.number))})
        cfg = build_config(result.run_dir / "config.yaml")
        classes = rd.read_json(result.run_dir / "classes.json")
        cost = measure(build_classifier(arch.name, len(classes), "none", cfg.dropout), cfg.img_size)
        for key, value in cost.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("seconds", rd.read_json(result.run_dir / "summary.json").get("seconds_total"))
        return result.best_metric, cost["latency_ms" if self.opts.latency == "onnx" else "mflops"]


def run_nas(opts: NasOptions) -> dict:
    """Run (or continue) the search; returns {"pareto": [...rows], "hypervolume", "n_complete", "n_failed"}."""
    if opts.latency not in ("onnx", "flops"):
        raise PixelforgeError(f"--latency {opts.latency!r}: use onnx or flops")
    check_budget_and_out(opts.trials, opts.timeout, opts.out)
    if opts.population < 2:  # NSGA-II breeds pairs: Optuna's ValueError was a traceback
        raise PixelforgeError(f"--population {opts.population}: give at least 2 (architectures per generation)")
    # The searched networks are classifiers: a config of another task is refused as such, not for its own keys.
    base = build_config(opts.config, **(opts.overrides or {}))
    if not isinstance(base, ClassifyConfig):
        raise PixelforgeError(f"{opts.config}: a task {base.task!r} config; pixelforge nas searches classification "
                              f"networks only: give a classify config (task: classify), or use pixelforge tune")
    storage = open_storage(opts.storage) if opts.storage else None  # a wrong URL fails before any folder is made
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "trials").mkdir(exist_ok=True)
    url = opts.storage or default_url(opts.out)
    def nsga2(seed):
        return optuna.samplers.NSGAIISampler(population_size=opts.population, seed=seed)

    # Seeded by trial number, or a continued search would draw its first architectures again (samplers.py).
    sampler = nsga2(None) if opts.seed is None else TrialSeeded(nsga2, opts.seed)
    study = optuna.create_study(study_name=opts.study or opts.out.resolve().name, storage=storage or open_storage(url),
                                directions=["maximize", "minimize"], sampler=sampler, load_if_exists=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # names the plot's axes
        study.set_metric_names(["val_acc", "latency_ms" if opts.latency == "onnx" else "mflops"])
    try:
        with sigterm_as_interrupt():
            optimize(study, _NasObjective(opts), opts.trials, opts.timeout)
    finally:
        summary = summarize_nas(study)
        write_report(study, opts.out, {**summary, "n_pruned": 0, "best_value": None}, url,
                     extra=[pareto_table(summary)])
    return summary


def summarize_nas(study) -> dict:
    trials = study.get_trials(deepcopy=False)
    front = sorted(study.best_trials, key=lambda t: t.values[1]) if any(
        t.state == TrialState.COMPLETE for t in trials) else []
    rows = [{"trial": t.number, "model": t.user_attrs["model"], "val_acc": t.values[0],
             "latency_ms": t.user_attrs.get("latency_ms"), "mflops": t.user_attrs.get("mflops"),
             "params_m": t.user_attrs.get("params_m"), "run": t.user_attrs.get("run_dir")} for t in front]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    reference = max((t.values[1] for t in complete), default=0.0) * 1.1
    return {"pareto": rows, "hypervolume": hypervolume([tuple(t.values) for t in front], reference),
            "reference_cost": reference, "n_complete": len(complete),
            "n_failed": sum(t.state == TrialState.FAIL and not t.user_attrs.get("surplus") for t in trials)}


def hypervolume(front: list[tuple[float, float]], reference_cost: float) -> float:
    """Area dominated by the front of (accuracy up, cost down) points, bounded by accuracy 0 and `reference_cost`.

    Written here because Optuna's hypervolume is private (optuna._hypervolume); in two dimensions it is a sum of
    rectangles over the front sorted by cost."""
    area, best_acc = 0.0, 0.0
    points = sorted(front, key=lambda p: p[1])  # cheapest first
    for i, (acc, cost) in enumerate(points):
        next_cost = points[i + 1][1] if i + 1 < len(points) else reference_cost
        best_acc = max(best_acc, acc)
        area += best_acc * max(next_cost - cost, 0.0)
    return round(area, 6)


def pareto_table(summary: dict) -> str:
    head = "<tr><th>trial</th><th>model</th><th>val_acc</th><th>latency ms</th><th>MFLOPs</th><th>params M</th></tr>"
    rows = "".join(f"<tr><td>{r['trial']}</td><td>{html.escape(r['model'])}</td><td>{r['val_acc']:.4f}</td>"
                   f"<td>{r['latency_ms']}</td><td>{r['mflops']}</td><td>{r['params_m']}</td></tr>"
                   for r in summary["pareto"])
    return (f"<h2>Pareto front ({len(summary['pareto'])} architectures; hypervolume {summary['hypervolume']:.4g} "
            f"up to cost {summary['reference_cost']:.4g})</h2><table>{head}{rows}</table>"
            "<p>Export any of them like a run: <code>pixelforge export STUDY/trials/N</code>.</p>")
