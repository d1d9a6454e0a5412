"""Replay an unpruned study's recorded learning curves through Optuna pruners: how many epochs each would have
saved, and how far the best val accuracy would have dropped, without training anything.

    python -m benchmarks.pruner_replay runs/bench-tune/tpe-0 [more unpruned study folders] [--orders 20]

Each trial's per-epoch `val_acc` (trials/<n>/metrics.csv) is reported to a fresh in-memory study in the trials'
order; a trial the pruner stops counts the epochs it had run and leaves the race for the best. This ignores the
sampler's reaction to pruned trials (a real pruned study proposes other points after the first prune), so it is a
guide for choosing defaults, not the T2 figure: `benchmarks.tune_search --only T2` measures real pruned studies.
`--orders N` also replays N shuffled orders of the same curves (a random-search-like order: the pruner's reference
trials are not the sampler's early random ones).
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
from pathlib import Path

import optuna

P = optuna.pruners
CANDIDATES = {  # name -> pruner for a study of `epochs` epochs per trial
    "median, 5 startup (Optuna's default)": lambda epochs: P.MedianPruner(n_startup_trials=5),
    "median, 4 startup": lambda epochs: P.MedianPruner(n_startup_trials=4),
    "median, 3 startup": lambda epochs: P.MedianPruner(n_startup_trials=3),
    "median, 2 startup": lambda epochs: P.MedianPruner(n_startup_trials=2),
    "median, 10 startup": lambda epochs: P.MedianPruner(n_startup_trials=10),
    "median, 3 startup, from epoch 2": lambda epochs: P.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
    "median, 5 startup, from epoch 2": lambda epochs: P.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    "percentile 40 (keep top 40%), 5 startup": lambda epochs: P.PercentilePruner(40.0, n_startup_trials=5),
    "percentile 40 (keep top 40%), 3 startup": lambda epochs: P.PercentilePruner(40.0, n_startup_trials=3),
    "percentile 25 (keep top 25%), 3 startup": lambda epochs: P.PercentilePruner(25.0, n_startup_trials=3),
    "percentile 60 (keep top 60%), 3 startup": lambda epochs: P.PercentilePruner(60.0, n_startup_trials=3),
    "hyperband, min 1 epoch, factor 3": lambda epochs: P.HyperbandPruner(1, epochs, 3),
    "hyperband, min 1 epoch, factor 2": lambda epochs: P.HyperbandPruner(1, epochs, 2),
    "hyperband, min 2 epochs, factor 3": lambda epochs: P.HyperbandPruner(2, epochs, 3),
}


def curves(study: Path, metric: str = "val_acc") -> list[list[float]]:
    trials = sorted((d for d in (study / "trials").iterdir() if (d / "metrics.csv").is_file()), key=lambda d: int(d.name))
    with_rows = [list(csv.DictReader((d / "metrics.csv").open())) for d in trials]
    curves = [[float(r[metric]) for r in rows] for rows in with_rows if rows]
    # An unpruned study's finished trials all ran every epoch; a shorter curve is a trial cut by an interruption.
    return [c for c in curves if len(c) == max(map(len, curves))]


def replay(trial_curves: list[list[float]], pruner) -> tuple[float, float]:
    """(fraction of epochs saved, best val accuracy drop in points) had `pruner` run the study."""
    # Hyperband puts each trial in a bracket by a CRC of the study name and trial number: a fixed name makes the
    # replay repeatable (another name draws other brackets: 47.5% or 50.8% saved on the same curves).
    study = optuna.create_study(study_name="replay", direction="maximize", pruner=pruner)
    epochs, best = 0, 0.0
    for curve in trial_curves:
        trial = study.ask()
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
            epochs += 1
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, max(curve))
            best = max(best, max(curve))
    full = sum(len(c) for c in trial_curves)
    return 1 - epochs / full, 100 * (max(max(c) for c in trial_curves) - best)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path, help="unpruned study folders (trials/<n>/metrics.csv)")
    parser.add_argument("--orders", type=int, default=0, help="also replay this many shuffled orders of each")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    studies = [curves(s) for s in args.studies]
    print(f"{'pruner':42s} " + " ".join(f"{s.name:>14s}" for s in args.studies) + "   (epochs saved / drop, points)")
    for name, make in CANDIDATES.items():
        cells = [replay(c, make(max(map(len, c)))) for c in studies]
        line = f"{name:42s} " + " ".join(f"{saved:7.1%} / {drop:4.2f}" for saved, drop in cells)
        if args.orders:
            shuffled = []
            for c in studies:
                for k in range(args.orders):
                    order = c[:]
                    random.Random(k).shuffle(order)
                    shuffled.append(replay(order, make(max(map(len, c)))))
            line += (f"   shuffled: saved {statistics.mean(s for s, _ in shuffled):.1%} (min "
                     f"{min(s for s, _ in shuffled):.1%}), drop max {max(d for _, d in shuffled):.2f}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
