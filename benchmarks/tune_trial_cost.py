"""Where one tune trial's time goes, at the setting of benchmarks.tune_search (digits, simple_cnn), per thread count
and precision.

    python -m benchmarks.tune_trial_cost                         # the issue's trial: all digits, 32 px, 6 epochs
    python -m benchmarks.tune_trial_cost --images 400 --img-size 16 --epochs 4 --threads 1
    python -m benchmarks.tune_trial_cost --epochs 2 --threads 1 --precisions 32,bf16-mixed   # fp32 against bf16

For each thread count: one trial in a study of one, in this process (imports and the first trial's warm-up are
paid by an untimed trial first), timed wall and process CPU, and split into the epochs' training and validation
(metrics.csv's epoch_seconds) and everything else (data decoding, model building, checkpoints, Optuna, the
study's bookkeeping). Side by side, so a change is read as a ratio on the same machine at the same moment.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from benchmarks.tune_search import lean_trials, prepare


def one_trial(config: Path, space: Path, out: Path, seed: int) -> dict:
    from pixelforge.runs import folder as rd
    from pixelforge.tune.study import TuneOptions, run_study

    shutil.rmtree(out, ignore_errors=True)
    wall, cpu = time.perf_counter(), time.process_time()
    run_study(TuneOptions(config, space, out, sampler="random", pruner="none", seed=seed, trials=1))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    epochs = sum(float(r["epoch_seconds"]) for r in rd.read_metrics(out / "trials" / "0" / "metrics.csv"))
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "epochs_wall_s": round(epochs, 2),
            "other_wall_s": round(wall - epochs, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--precisions", default="32", help="comma-separated: each thread count runs each")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-trial-cost"))
    args = parser.parse_args(argv)
    import torch

    args.work.mkdir(parents=True, exist_ok=True)
    lean_trials()
    for precision in args.precisions.split(","):
        (args.work / precision).mkdir(parents=True, exist_ok=True)
        config, space = prepare(args.work / precision, args.images, args.epochs, args.img_size, precision)
        one_trial(config, space, args.work / precision / "warm-up", 0)
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            cost = one_trial(config, space, args.work / precision / f"threads-{threads}", 0)
            print(f"precision {precision}, {threads} thread(s): {cost}", flush=True)


if __name__ == "__main__":
    main()
