"""The names `--sampler` and `--pruner` take, mapped to Optuna's classes (no search algorithm written here)."""

from __future__ import annotations

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
    before TPE or CMA-ES model the space (`startup_trials`); TPE scores `candidates` draws a trial."""
    if isinstance(name, optuna.samplers.BaseSampler):
        return name
    if name == "grid":
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        # multivariate TPE models keys jointly (lr and batch size interact); constant_liar keeps parallel workers
        # from proposing the same point while a trial runs.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, n_ei_candidates=candidates,
                                          multivariate=True, constant_liar=True)
    if name == "cmaes":
        # CMA-ES handles only float/int keys; categorical ones fall back to an independent random sampler.
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    raise PixelforgeError(f"--sampler {name!r}: use one of {', '.join(SAMPLERS)}")


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
