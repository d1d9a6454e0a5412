"""`pixelforge.tune_study` and `pixelforge.nas`: what `pixelforge tune` and `pixelforge nas` run, with the commands'
options as keywords and their defaults.

(`pixelforge.tune` is this package's name, so the hyper-parameter search is `pixelforge.tune_study`.) They live in
this layer, not in api/, because their trials are api.train runs: tune/ sits above api/ (ARCHITECTURE.md).
"""

from __future__ import annotations

from pathlib import Path


def tune_study(config: str | Path, space: str | Path, out: str | Path = "runs/study", sampler: str = "tpe",
               trials: int | None = None, timeout: float | None = None, pruner: str = "none",
               metric: str | None = None, direction: str | None = None, storage: str | None = None,
               study: str | None = None, seed: int | None = None, devices: int | None = None,
               epochs: int | None = None, retrain_best: bool = False, mlflow: str | None = None) -> dict:
    """Search hyper-parameters with Optuna (every trial a run folder in OUT/trials/; resumable; many workers on one
    `storage`), as `pixelforge tune` does. `trials` defaults to 20 (grid: the whole grid; with a `timeout`: until
    it). Returns the study's summary: best_value, best_params, best_run, n_complete, n_pruned, n_failed, ...
    (`retrained` too with `retrain_best`: best.yaml trained on train+val and scored on the test split).

    Example:
        >>> tune_study("base.yaml", "space.yaml", out="runs/study", trials=8, epochs=2)["best_params"]  # doctest: +SKIP
        {'lr': 0.0031, 'batch_size': 32}
    """
    from pixelforge.tune.study import TuneOptions, run_study

    config, space, out = Path(config), Path(space), Path(out)
    overrides = {k: v for k, v in {"devices": devices, "epochs": epochs}.items() if v is not None}
    if trials is None and sampler != "grid" and timeout is None:
        trials = 20
    if retrain_best:  # refused before the study, not after it
        from pixelforge.tune.retrain import check_can_retrain

        check_can_retrain(config, overrides)
    summary = run_study(TuneOptions(config=config, space=space, out=out, sampler=sampler, trials=trials,
                                    timeout=timeout, pruner=pruner, metric=metric, direction=direction,
                                    storage=storage, study=study, seed=seed, overrides=overrides,
                                    mlflow=mlflow))
    if retrain_best:
        from pixelforge.tune.retrain import retrain_best as retrain

        summary["retrained"] = retrain(out, summary.get("best_run"))
    return summary


def nas(config: str | Path, out: str | Path = "runs/nas", trials: int | None = 20, timeout: float | None = None,
        latency: str = "onnx", population: int = 8, seed: int | None = None, epochs: int | None = None,
        storage: str | None = None, study: str | None = None) -> dict:
    """Search architectures with NSGA-II, accuracy against latency (`latency="onnx"`: median ONNX Runtime ms at
    batch 1 on this machine; "flops"), as `pixelforge nas` does. Returns what `pixelforge nas --json` prints: the
    Pareto front (trial, val_acc, latency_ms, mflops, params_m, model), its hypervolume, n_complete, ...

    Example:
        >>> front = nas("classify.yaml", out="runs/nas", trials=12, latency="flops")["pareto"]  # doctest: +SKIP
        >>> [row["trial"] for row in front]  # doctest: +SKIP
        [3, 7, 10]
    """
    from pixelforge.tune.nas import NasOptions, run_nas

    overrides = {"epochs": epochs} if epochs else {}
    return run_nas(NasOptions(config=Path(config), out=Path(out), trials=trials, timeout=timeout, latency=latency,
                              seed=seed, population=population, storage=storage, study=study, overrides=overrides))
