"""Continual learning on split-digits: every strategy through the same 5-task sequence, one table.

    python -m benchmarks --only continual            # naive, replay, ewc, lwf; ~10 min on a quiet 2-core machine
    python -m benchmarks.continual --strategies replay --epochs 4

The first task is trained once (from scratch) and every strategy continues from that same run, so the rows
differ only by the strategy; its seconds are counted in each sequence's. Each step is a real
`pixelforge.train(..., continue_from=...)` run (report, calibration and all). Prints avg_accuracy, bwt,
forgetting and the seconds per sequence (wall and this process's CPU time; on a shared machine CPU / 2
approximates a quiet 2-core wall time), writes benchmarks/results/continual-*.json and a heat map per strategy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = Path(__file__).resolve().parent / "results"
STRATEGIES = ("naive", "replay", "ewc", "lwf")
# The recipe (measured in docs/continual-learning.md): simple_cnn from scratch at 16 px (the digits are 8x8).
RECIPE = {"model": "simple_cnn", "weights": "none", "img_size": 16, "strategy": "full", "precision": "32",
          "lr": 3e-3, "batch_size": 16, "workers": 0, "label_smoothing": 0.0, "calibrate": False, "quiet": True}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.continual", description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per task")
    parser.add_argument("--memory", type=int, default=200, help="replay: total memory (20 per class at the end)")
    parser.add_argument("--ewc-lambda", type=float, default=None, help="ewc: the penalty weight (default the config's)")
    parser.add_argument("--lwf-alpha", type=float, default=None, help="lwf: the distillation weight (default the config's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here (default: a temp folder)")
    return parser.parse_args(argv)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_sequence(first: Path, tasks: list[Path], strategy: str, work: Path, args) -> Path:
    from pixelforge.api.train import train

    previous = first
    for k, data in enumerate(tasks[1:], start=2):
        options = {"continual": strategy, "epochs": args.epochs}
        if strategy == "replay":
            options["memory"] = args.memory
        if strategy == "ewc" and args.ewc_lambda is not None:
            options["ewc_lambda"] = args.ewc_lambda
        if strategy == "lwf" and args.lwf_alpha is not None:
            options["lwf_alpha"] = args.lwf_alpha
        previous = train(str(data), continue_from=str(previous), out=str(work / f"{strategy}-task{k}"),
                         **options).run_dir
    return previous


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    # simple_cnn at 16 px is too small to split across threads: one thread measured 10x faster (150 vs 15 img/s)
    # on the shared 2-core machine, where the second OpenMP thread waits on a busy core; no DataLoader workers
    # either, the decoded 16 px images are in RAM.
    torch.set_num_threads(1)
    from benchmarks.machine import load_average, machine_info, machine_line
    from pixelforge.api.train import train
    from pixelforge.data.split_digits import write_split_digits

    machine = machine_info()
    print(machine_line(machine), flush=True)
    work = args.keep or Path(tempfile.mkdtemp(prefix="pf-continual-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        tasks = write_split_digits(work / "split-digits", args.tasks)
        wall, cpu = time.perf_counter(), _cpu()
        first = train(str(tasks[0]), out=str(work / "task1"), epochs=args.epochs, **RECIPE).run_dir
        first_wall, first_cpu = time.perf_counter() - wall, _cpu() - cpu
        print(f"task 1 trained in {first_wall:.1f} s (CPU {first_cpu:.1f} s)", flush=True)
        for strategy in args.strategies.split(","):
            wall, cpu = time.perf_counter(), _cpu()
            last = run_sequence(first, tasks, strategy, work, args)
            seconds, cpu_seconds = time.perf_counter() - wall + first_wall, _cpu() - cpu + first_cpu
            result = json.loads((last / "continual.json").read_text())
            args.out.mkdir(parents=True, exist_ok=True)
            png = args.out / f"continual-{strategy}-matrix.png"
            shutil.copyfile(last / "continual_matrix.png", png)
            rows.append({"strategy": strategy, "avg_accuracy": result["avg_accuracy"], "bwt": result["bwt"],
                         "forgetting": result["forgetting"], "seconds": round(seconds, 1),
                         "cpu_seconds": round(cpu_seconds, 1), "accuracy_matrix": result["accuracy_matrix"],
                         "heat_map": str(png)})
            print(f"{strategy}: avg_accuracy {result['avg_accuracy']:.4f} in {seconds:.1f} s", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    table = ["| strategy | avg_accuracy | bwt | forgetting | seconds per sequence (wall / CPU) |",
             "| --- | --- | --- | --- | --- |"]
    table += [f"| {r['strategy']} | {r['avg_accuracy']:.4f} | {r['bwt']:+.4f} | {r['forgetting']:.4f} | "
              f"{r['seconds']:.1f} / {r['cpu_seconds']:.1f} |" for r in rows]
    print()
    print(machine_line(machine) + f" -> {load_average()} at the end")
    print("\n".join(table))
    report = {"command": "python -m benchmarks.continual " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": machine, "recipe": {**RECIPE, "epochs": args.epochs, "memory": args.memory, "ewc_lambda": args.ewc_lambda,
                         "lwf_alpha": args.lwf_alpha},
              "rows": rows, "table_markdown": "\n".join(table)}
    path = args.out / f"continual-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
