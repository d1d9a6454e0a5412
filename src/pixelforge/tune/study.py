"""`tune`: an Optuna study whose trials are normal run folders made by `pixelforge.api.train`.

One worker runs trials until the study holds `trials` finished ones (complete or pruned, counted across every
worker of the study) or `timeout` has passed; starting the same command again, on this machine or another sharing
the storage, continues the same study. An interrupted trial (Ctrl-C, SIGTERM) is marked failed and its parameters
are queued again; one whose worker died (kill -9) is found by its stale heartbeat and retried (storage.py).
"""

from __future__ import annotations

import gc
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from pixelforge.api.train import train
from pixelforge.errors import Interrupted, PixelforgeError, sigterm_as_interrupt, signal_of
from pixelforge.runs import folder as rd
from pixelforge.tasks.registry import get_task
from pixelforge.tune import space as spaces
from pixelforge.tune.space_check import as_overrides, check_space
from pixelforge.tune.pruning import PRUNED, OptunaPruning
from pixelforge.tune.report import write_best_config, write_report
from pixelforge.tune.samplers import PRUNERS, SAMPLERS, build_pruner, build_sampler, startup_trials
from pixelforge.tune.storage import default_url, open_storage

log = logging.getLogger("pixelforge")
MAX_FAILURES_IN_A_ROW = 3  # a worker whose trials all fail (a bad space, a broken config) stops instead of looping


@dataclass
class TuneOptions:
    config: Path
    space: Path
    out: Path
    sampler: str | object = "tpe"  # a name, or an optuna.samplers object (benchmarks: TPE with other settings)
    trials: int | None = 20
    timeout: float | None = None
    pruner: str | object = "none"  # a name, or an optuna.pruners object
    metric: str | None = None
    direction: str | None = None
    storage: str | None = None
    study: str | None = None
    seed: int | None = None
    overrides: dict | None = None  # config keys fixed for every trial (--devices 2, --epochs 3, ...)
    mlflow: str | None = None  # tracking URI: each finished trial logged as a nested run (tune/tracking.py)
    callbacks: tuple = ()  # more Optuna callbacks, (study, frozen trial) after each trial (benchmarks: disk upkeep)


class TrialFailed(Exception):
    """A trial that failed for its own reasons (its parameters); the study goes on."""


class TrialSurplus(TrialFailed):
    """A trial created after the study already held its `trials`: two workers counted at the same moment.

    Counting and creating a trial are two storage calls, so two workers that finish together can both see N-1 and
    both start one. The later-numbered trial is then failed before it trains (failed trials are not counted and
    samplers ignore them), marked `surplus`, and left out of the failure counts.
    """


def run_study(opts: TuneOptions) -> dict:
    """Run (or continue) the study; return the `--json` summary.

    Example:
        >>> run_study(TuneOptions(Path("base.yaml"), Path("space.yaml"), Path("study")))  # doctest: +SKIP
        {'best_value': 0.95, 'best_params': {...}, 'n_complete': 20, 'n_pruned': 0, 'n_failed': 0}
    """
    _check_options(opts)
    base, space = check_space(opts.config, opts.space, opts.overrides)
    metric, direction = _metric(opts, base)
    # A server named by --storage is reached before the study folder is made: a wrong URL leaves nothing behind.
    storage = open_storage(opts.storage) if opts.storage else None
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "trials").mkdir(exist_ok=True)
    url = opts.storage or default_url(opts.out)
    storage = storage or open_storage(url)
    grid = spaces.grid(space, opts.space) if opts.sampler == "grid" else None
    target = _target(opts, grid)
    pruner = build_pruner(opts.pruner, base.epochs, target)
    name = opts.study or opts.out.resolve().name
    sampler = build_sampler(opts.sampler, opts.seed, grid, startup_trials(target))
    _say_what_cmaes_draws_at_random(opts.sampler, space)
    study = _open_study(name, storage, metric, direction, sampler, pruner)
    _remember(study, opts, metric, direction, space)
    objective = _Objective(opts, space, metric, direction, url, name, pruner, target, base)
    callbacks = list(opts.callbacks)
    if opts.mlflow is not None:
        from pixelforge.tune.tracking import TrialLogger

        callbacks.append(TrialLogger(opts.mlflow or None, opts.out))
    try:
        with sigterm_as_interrupt():
            optimize(study, objective, target, opts.timeout, callbacks)
    except PixelforgeError as exc:
        # The study stopped (failed trials, a wrong --metric, Ctrl-C): the command still prints the summary of what
        # ran under --json, so a script learns n_failed from stdout as it would from a finished study.
        exc.summary = _wrap_up(study, opts, url)
        raise
    except BaseException:
        _wrap_up(study, opts, url)
        raise
    return _wrap_up(study, opts, url)


def _wrap_up(study, opts: TuneOptions, url: str) -> dict:
    """An interrupted or stopped study still gets its report and best.yaml, for the trials it has."""
    summary = summarize(study)
    write_best_config(study, opts.out)
    write_report(study, opts.out, summary, url)
    return summary


def _check_options(opts: TuneOptions) -> None:
    """The options' own mistakes, before the config is read or anything is written."""
    check_budget_and_out(opts.trials, opts.timeout, opts.out)
    if opts.direction is not None and opts.direction not in ("max", "min"):
        raise PixelforgeError(f"--direction {opts.direction!r}: use max or min")
    if isinstance(opts.sampler, str) and opts.sampler not in SAMPLERS:
        raise PixelforgeError(f"--sampler {opts.sampler!r}: use one of {', '.join(SAMPLERS)}")
    if isinstance(opts.pruner, str) and opts.pruner not in PRUNERS:
        raise PixelforgeError(f"--pruner {opts.pruner!r}: use one of {', '.join(PRUNERS)}")


def check_budget_and_out(trials: int | None, timeout: float | None, out: Path) -> None:
    """`tune`'s and `nas`'s shared options: a budget that runs something, and an --out that can be a folder."""
    if trials is not None and trials < 1:
        # Optuna's n_trials=0 runs nothing; here it made an empty study folder and exited 0.
        raise PixelforgeError(f"--trials {trials}: give at least 1 (the finished trials the study should hold)")
    if timeout is not None and timeout <= 0:
        raise PixelforgeError(f"--timeout {timeout:g}: give a number of seconds above 0")
    if out.exists() and not out.is_dir():
        raise PixelforgeError(f"{out}: --out is a file, not a study folder; choose another --out")


def _say_what_cmaes_draws_at_random(sampler, space: dict) -> None:
    """CMA-ES models numeric ranges only; Optuna draws the other keys at random without saying so (its warning is
    switched off in samplers.py, as it repeats every trial): said once here, so a comparison of samplers is read
    knowing it."""
    lists = [k for k, d in space.items() if isinstance(d, spaces.CategoricalDistribution)]
    if sampler == "cmaes" and lists:
        log.warning("--sampler cmaes: %s %s, drawn at random (CMA-ES models only {low, high} ranges)%s",
                    ", ".join(lists), "is a list of choices" if len(lists) == 1 else "are lists of choices",
                    "; with no range in the space this is random search" if len(lists) == len(space) else "")


def _metric(opts: TuneOptions, base) -> tuple[str, str]:
    monitor, mode = get_task(base.task).monitor_of(base)
    metric = opts.metric or monitor
    direction = opts.direction or (mode if metric == monitor else "min" if "loss" in metric else "max")
    return metric, direction


def _target(opts: TuneOptions, grid: dict | None) -> int | None:
    if grid is None:
        return opts.trials
    size = 1
    for values in grid.values():
        size *= len(values)
    return min(opts.trials or size, size)  # a grid is finished once every point has run


def _open_study(name: str, storage, metric: str, direction: str, sampler, pruner):
    """The study `name`, made anew when it holds nothing but failed trials of another metric or direction.

    A misspelt --metric fails the first trial (the metric is known once a metrics.csv exists) after Optuna has
    stored the study's direction, which it never changes: the corrected command was refused for the typo's
    metric. A study of failed trials only has nothing to continue; their run folders stay under trials/."""
    def make():
        return optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                   direction="maximize" if direction == "max" else "minimize", load_if_exists=True)

    study = make()
    other = study.user_attrs.get("metric") not in (None, metric) or study.direction != _direction(direction)
    if other and all(t.state == TrialState.FAIL for t in study.get_trials(deepcopy=False)):
        log.warning("study %r held only failed trials, of %s (%s): made anew for %s (%s)", name,
                    study.user_attrs.get("metric", "another metric"), study.user_attrs.get("direction", "?"), metric,
                    direction)
        optuna.delete_study(study_name=name, storage=storage)
        study = make()
    return study


def _direction(direction: str):
    return optuna.study.StudyDirection.MAXIMIZE if direction == "max" else optuna.study.StudyDirection.MINIMIZE


def _remember(study, opts: TuneOptions, metric: str, direction: str, space: dict) -> None:
    """The study's metric, direction and space are part of it: a worker started with another metric or direction
    would mix two objectives, one with another space (the same --out, a new space.yaml) two searches in one study."""
    searched = {key: json.loads(optuna.distributions.distribution_to_json(d)) for key, d in space.items()}
    attrs = study.user_attrs
    if attrs.get("metric", metric) != metric or study.direction != _direction(direction):
        verb = {"max": "maximise", "min": "minimise"}
        made = "max" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "min"
        raise PixelforgeError(f"study {study.study_name!r} {verb[made]}s {attrs.get('metric', 'its metric')}; this "
                              f"worker asked to {verb[direction]} {metric}: use the same --metric and --direction, "
                              f"or another --out or --study")
    if attrs.get("space") is not None and attrs["space"] != searched:
        raise PixelforgeError(f"study {study.study_name!r} searches {_describe(attrs['space'])}; {opts.space.name} "
                              f"searches {_describe(searched)}: use the same --space, or another --out or --study")
    if attrs.get("metric") is None:
        study.set_user_attr("metric", metric)
        study.set_user_attr("direction", direction)
        study.set_user_attr("config", str(opts.config))
    if attrs.get("space") is None:
        study.set_user_attr("space", searched)


def _describe(searched: dict) -> str:
    """`lr: [0.01, 0.05], hidden: 2-8`: a stored space in a line."""
    def one(d: dict) -> str:
        a = d["attributes"]
        if "choices" in a:
            return json.dumps(a["choices"])
        return f"{a['low']:g}-{a['high']:g}" + (" (log)" if a.get("log") else "")
    return ", ".join(f"{key}: {one(d)}" for key, d in searched.items())


class _Objective:
    def __init__(self, opts: TuneOptions, space: dict, metric: str, direction: str, url: str, study_name: str, pruner,
                 target: int | None = None, base=None):
        self.opts, self.space, self.metric, self.direction = opts, space, metric, direction
        self.url, self.study_name, self.pruner, self.target, self.base = url, study_name, pruner, target, base

    def __call__(self, trial: optuna.Trial) -> float:
        give_back_if_full(trial, self.target)
        params = spaces.suggest(trial, self.space)
        run_dir = self.opts.out / "trials" / str(trial.number)
        hooks = [] if isinstance(self.pruner, optuna.pruners.NopPruner) else [
            OptunaPruning(self.url, self.study_name, trial._trial_id, self.pruner, self.metric)]
        log.info("trial %d: %s", trial.number, json.dumps(params))
        result = train_trial(trial, params, config=self.opts.config, callbacks=hooks,
                             **{**(self.opts.overrides or {}), "quiet": True, **as_overrides(self.base, params),
                                "out": str(run_dir)})
        trial.set_user_attr("run_dir", str(result.run_dir))
        return self._value(trial, result.run_dir)

    def _value(self, trial, run: Path) -> float:
        rows = rd.read_metrics(run / "metrics.csv")
        summary = rd.read_json(run / "summary.json")
        values = [float(r[self.metric]) for r in rows if r.get(self.metric) is not None]
        if not values:
            raise PixelforgeError(f"--metric {self.metric}: not in {run / 'metrics.csv'} (it has "
                                  f"{', '.join(k for k in rows[0] if k != 'epoch') if rows else 'no rows'})")
        trial.set_user_attr("epochs_run", len(rows))
        trial.set_user_attr("seconds", summary.get("seconds_total") or summary.get("seconds_training"))
        trial.set_user_attr("images_per_s", summary.get("images_per_s"))
        if str(summary.get("stop_reason", "")).startswith(PRUNED):
            raise optuna.TrialPruned(summary["stop_reason"])
        return max(values) if self.direction == "max" else min(values)


def give_back_if_full(trial: optuna.Trial, target: int | None) -> None:
    """An objective's first call: if the study already held `target` trials before `trial` (see TrialSurplus), the
    trial is given back and TrialSurplus raised before anything trains."""
    if target is not None and _trials_before(trial) >= target:
        give_back(trial, target)


def _trials_before(trial: optuna.Trial) -> int:
    """How many trials numbered below this one count towards the budget (finished, or running elsewhere)."""
    counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return sum(t.number < trial.number and t.state in counted for t in trial.study.get_trials(deepcopy=False))


def give_back(trial: optuna.Trial, target: int) -> None:
    """A surplus trial: marked, kept out of Optuna's failure log, its queued parameters (a retry) queued again, and
    failed (TrialSurplus) before it trains."""
    trial.set_user_attr("surplus", True)
    _quiet_surplus.numbers.add(trial.number)
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    fixed = frozen.system_attrs.get("fixed_params")
    if fixed:
        trial.study.enqueue_trial(fixed, user_attrs={k: v for k, v in trial.user_attrs.items() if k != "surplus"})
    raise TrialSurplus(f"trial {trial.number}: the study already has its {target} trials")


class _QuietSurplus(logging.Filter):
    """Optuna logs every failed trial with a traceback; a surplus trial is not an error, nor is one stopped by Ctrl-C
    (the study says so in one line), so their lines are dropped; a trial that failed for its parameters keeps its
    line without the traceback."""

    def __init__(self):
        super().__init__()
        self.numbers: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, PixelforgeError) and message.startswith("Trial "):  # it stops the study, which prints
            self.numbers.add(int(message.split()[1]))  # it as its one `error:` line: Optuna's lines only repeat it
        elif isinstance(error, TrialFailed):  # the line names the error; the traceback is pixelforge's frames,
            record.exc_info, record.exc_text = None, None  # not the user's mistake
        for n in list(self.numbers):
            if message.startswith(f"Trial {n} failed with value"):  # Optuna's last line for the trial
                self.numbers.discard(n)  # a later study in this process may have its own trial n
                return False
            if message.startswith(f"Trial {n} failed"):
                return False
        return True


_quiet_surplus = _QuietSurplus()
logging.getLogger("optuna.study._optimize").addFilter(_quiet_surplus)


def train_trial(trial: optuna.Trial, params: dict, **options):
    """`pixelforge.api.train(**options)` as `trial`: its run folder recorded, an interruption turned into the
    study's stop (the trial's parameters queued again), any other error into this trial's failure."""
    trial.set_user_attr("run_dir", options["out"])
    try:
        result = train(**options)
    except (PixelforgeError, KeyboardInterrupt) as exc:
        # Ctrl-C or SIGTERM: during the epochs the engine saves and raises "interrupted ..."; before them (data,
        # model) it arrives as KeyboardInterrupt. Optuna marks the trial failed; its parameters are queued again
        # so the next start trains them.
        if isinstance(exc, (KeyboardInterrupt, Interrupted)):
            trial.set_user_attr("interrupted", True)
            _quiet_surplus.numbers.add(trial.number)
            trial.study.enqueue_trial(params, user_attrs={"requeued_from": trial.number})
            raise KeyboardInterrupt(exc.signum if isinstance(exc, Interrupted) else signal_of(exc)) from None
        trial.set_user_attr("error", str(exc))
        raise TrialFailed(str(exc)) from None
    trial.set_user_attr("run_dir", str(result.run_dir))
    return result


def optimize(study, objective, target: int | None, timeout: float | None, callbacks=()) -> None:
    """One trial at a time, counting the study's trials before each: every worker stops once the study holds
    `target` finished or running trials, so N trials spread over several workers add up to N."""
    # Optuna's collection after each trial (a model or optimizer in a reference cycle would hold its memory, GPU
    # memory too, into the next trial) walked every object of the process, torch's and matplotlib's modules among
    # them: 0.25 CPU-seconds a trial, as long as a toy trial's training. What is alive after the first trial's
    # collection (the imports, the study) is frozen for the study (gc.freeze), so the later collections walk what the
    # trials made (what of the first trial was still alive then and turns to garbage later waits for the study's
    # end). A caller that froze objects itself is left as it is.
    freeze = gc.get_freeze_count() == 0
    try:
        _optimize(study, objective, target, timeout, callbacks, freeze)
    finally:
        if freeze:
            gc.unfreeze()


def _optimize(study, objective, target: int | None, timeout: float | None, callbacks, freeze: bool) -> None:
    started, failures = time.monotonic(), 0
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial: failed and re-queued before counting
        states = [t.state for t in study.get_trials(deepcopy=False)]
        taken = sum(s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for s in states)
        if target is not None and taken >= target:
            return
        if timeout is not None and time.monotonic() - started >= timeout:
            return
        ran = []  # this worker's trial (the study's last one may be another worker's)
        try:
            study.optimize(objective, n_trials=1, catch=(TrialFailed,), gc_after_trial=True,
                           callbacks=[*callbacks, lambda _, trial: ran.append(trial)])
        except KeyboardInterrupt as interrupt:
            raise Interrupted("study interrupted; a running trial was marked failed and queued again: run the same "
                              "command to continue", signal_of(interrupt)) from None
        if freeze and gc.get_freeze_count() == 0:
            gc.freeze()
        last = ran[-1] if ran else None
        if last is not None and last.user_attrs.get("surplus"):
            continue  # another worker's trial filled the study: the next count ends this worker
        failures = failures + 1 if last is not None and last.state == TrialState.FAIL else 0
        if failures >= MAX_FAILURES_IN_A_ROW:
            raise PixelforgeError(f"{failures} trials in a row failed (last: {last.user_attrs.get('error')}); "
                                  f"fix the config or the space and run the same command again")


def summarize(study) -> dict:
    """The `--json` summary: the best value and parameters, and how many trials ended each way."""
    trials = study.get_trials(deepcopy=False)
    count = {state: sum(t.state == state and not t.user_attrs.get("surplus") for t in trials) for state in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None
    return {"best_value": best.value if best else None, "best_params": best.params if best else {},
            "n_complete": count[TrialState.COMPLETE], "n_pruned": count[TrialState.PRUNED],
            "n_failed": count[TrialState.FAIL], "best_trial": best.number if best else None,
            "best_run": best.user_attrs.get("run_dir") if best else None}
