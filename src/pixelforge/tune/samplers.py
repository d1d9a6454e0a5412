"""The names `--sampler` and `--pruner` take, mapped to Optuna's classes (no search algorithm written here)."""

from __future__ import annotations

import numpy as np
import optuna

from pixelforge.errors import PixelforgeError

SAMPLERS = ("grid", "random", "tpe", "cmaes")
PRUNERS = ("none", "median", "hyperband")
# Optuna's n_ei_candidates: points drawn from the good trials' density, the best ratio kept. Not 96 (a sharper,
# more exploitative pick): round ten (docs/tuning-log.md), pre-registered, reached random search's best later on seeds
# 20-24 (T1 0.720 of the trials against 24's 0.670).
EI_CANDIDATES = 24


def startup_trials(budget: int | None) -> int:
    """Random trials before TPE or CMA-ES model the space: Optuna's 10, but a quarter of a smaller budget (at least
    3), or a 10-trial study would be random search throughout. Not fewer at 40: round nine (docs/tuning-log.md) tried 5,
    pre-registered, and on fresh seeds TPE reached random search's best later (T1 1.020 of the trials, 10: 0.670)."""
    return 10 if budget is None else max(3, min(10, budget // 4))


def pruner_startup_trials(budget: int | None) -> int:
    """Trials the median pruner lets finish before it judges any: Optuna's 5, but a twelfth of a smaller budget (at
    least 2). The median is taken over finished trials, and a TPE study's first trials are its random, mostly poor,
    ones: each that finishes lowers the bar every later trial is held to. Replaying 40 recorded curves of the issue's
    setting (docs/tuning-log.md) through the pruner, 5 startup trials saved 32% of the epochs and 3 saved 53%, both
    within one val image of the unpruned best."""
    return 5 if budget is None else max(2, min(5, budget // 12))


def build_sampler(name, seed: int | None, grid: dict | None = None, startup: int = 10,
                  candidates: int = EI_CANDIDATES):
    """`name`, or an Optuna sampler object as it is (from Python: any of `optuna.samplers`). `startup` random trials
    before TPE or CMA-ES model the space (`startup_trials`); TPE scores `candidates` draws a trial. With a `seed`,
    a trial's draws come from (seed, trial number): `TrialSeeded`."""
    if isinstance(name, optuna.samplers.BaseSampler):
        return name
    if name not in SAMPLERS:
        raise PixelforgeError(f"--sampler {name!r}: use one of {', '.join(SAMPLERS)}")
    if seed is None:
        return _sampler(name, None, grid, startup, candidates)
    return TrialSeeded(lambda trial_seed: _sampler(name, trial_seed, grid, startup, candidates), seed)


class TrialSeeded(optuna.samplers.BaseSampler):
    """`make(seed)`'s sampler, made again before each trial with a seed from (seed, trial number).

    A sampler made with a fixed seed draws the same values each time it is made: a study continued by the same
    command (after Ctrl-C, or with more `--trials`) drew its first trials' parameters again, and workers started
    with one `--seed` drew the same ones side by side. A trial's draws now depend on the seed and its number only:
    a study is still repeatable, and never repeats itself. Everything else a sampler knows it reads from the study.
    """

    def __init__(self, make, seed: int):
        self._make, self._seed = make, seed
        self._sampler = make(seed)

    def before_trial(self, study, trial) -> None:
        self._sampler = self._make(int(np.random.SeedSequence([self._seed, trial.number]).generate_state(1)[0]))
        self._sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._sampler.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._sampler.reseed_rng()


def _sampler(name: str, seed: int | None, grid: dict | None, startup: int, candidates: int):
    if name == "grid":
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        # multivariate TPE models keys jointly (lr and batch size interact); constant_liar keeps parallel workers
        # from proposing the same point while a trial runs.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, n_ei_candidates=candidates,
                                          multivariate=True, constant_liar=True)
    # CMA-ES handles only float/int keys; categorical ones fall back to an independent random sampler.
    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)


def build_pruner(name, max_epochs: int, budget: int | None = None):
    """`name`, or an Optuna pruner object as it is (from Python: any of `optuna.pruners`).

    Median: stop a trial whose epoch-k value is worse than the median of the finished trials at epoch k, from epoch
    1, once `pruner_startup_trials(budget)` trials have finished. Hyperband (Li et al. 2018): successive halving at
    several budgets from 1 epoch up, keeping the best third at each rung."""
    if isinstance(name, optuna.pruners.BasePruner):
        return name
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=pruner_startup_trials(budget), n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 1), reduction_factor=3)
    raise PixelforgeError(f"--pruner {name!r}: use one of {', '.join(PRUNERS)}")
