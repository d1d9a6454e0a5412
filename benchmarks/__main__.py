"""`python -m benchmarks`: run the side-by-side benchmarks, print the table, write benchmarks/results/*.json.

    python -m benchmarks                 # B1-B3 (+ B4 memory beside each), B1W whole processes and the levers, ~20 min
    python -m benchmarks --only B1,B2    # a selection (B1, B1W, B2, B3, L)
    python -m benchmarks --smoke         # tiny built-in data, one repeat: checks the code runs, numbers mean nothing
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # benchmarks never reach a model hub

CASES = ("B1", "B1W", "B2", "B3", "L")
STANDALONE = {"CONTINUAL": "benchmarks.continual"}  # cases with their own data and table: --only continual
FULL_REPEATS = {"B1": 1, "B1W": 2, "B2": 2, "B3": 2, "L": 2}
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--smoke", action="store_true", help="tiny built-in data and one repeat (what CI runs)")
    parser.add_argument("--only", default=None, help="comma-separated cases: B1,B1W,B2,B3,L (default: all; --smoke "
                        "leaves out B1W, whose five whole processes take longer than the rest of the smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per pair (default: B1/B2 1, B3/L 2)")
    parser.add_argument("--data", type=Path, default=None,
                        help="ImageFolder root (default ../shared/data/hymenoptera/train)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder for the results JSON (default benchmarks/results)")
    args = parser.parse_args(argv)
    default = [c for c in CASES if not (args.smoke and c == "B1W")]
    args.only = [c.strip().upper() for c in args.only.split(",") if c.strip()] if args.only else default
    unknown = [c for c in args.only if c not in CASES and c not in STANDALONE]
    if unknown:
        parser.error(f"--only {','.join(unknown)}: unknown case; choose from {','.join(CASES + tuple(STANDALONE))}")
    return args


def format_value(value, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f} {unit}" if value >= 10 or unit == "s" else f"{value:.2f} {unit}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| case | measure | baseline | pixelforge | ratio | goal | peak RSS added, MB (baseline / pixelforge) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        if row["goal_met"]:
            ratio = f"**{ratio}**"
        goal = f">= {row['goal']:g}x" if row["goal"] else ""
        lines.append(f"| {row['case']} | {row['metric']} | {format_value(row['baseline'], row['unit'])} "
                     f"({row['baseline_name']}) | {format_value(row['pixelforge'], row['unit'])} "
                     f"({row['pixelforge_name']}) | {ratio} | {goal} | "
                     f"{row['baseline_rss_mb']:.0f} / {row['pixelforge_rss_mb']:.0f} |")
    return "\n".join(lines)


def run_case(case: str, work, repeats: int) -> list:
    from benchmarks import b1_time_to_accuracy, b1_whole_process, b2_throughput, b3_pipeline, levers

    module = {"B1": b1_time_to_accuracy, "B1W": b1_whole_process, "B2": b2_throughput, "B3": b3_pipeline,
              "L": levers}[case]
    return module.run(work, repeats, say=lambda line: print(line, flush=True))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    standalone = [c for c in args.only if c in STANDALONE]
    if standalone:  # run apart from the workload below, with their own table (benchmarks/continual.py)
        import importlib

        code = max(importlib.import_module(STANDALONE[c]).main([]) for c in standalone)
        args.only = [c for c in args.only if c not in STANDALONE]
        if not args.only:
            return code
    from benchmarks.machine import load_average, machine_info, machine_line
    from benchmarks.workload import HYMENOPTERA, full_workload, smoke_workload

    started = time.perf_counter()
    machine = machine_info()
    print(machine_line(machine), flush=True)
    mode = "smoke" if args.smoke else "full"
    work = smoke_workload() if args.smoke else full_workload(args.data)
    report = {"mode": mode, "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": machine, "rows": [], "skipped": [], "errors": []}
    if work is None:
        where = args.data or HYMENOPTERA
        print(f"skipped: no image folder at {where}; pass --data DIR (class subfolders) or run --smoke", flush=True)
        report["skipped"] = [f"{case}: no data at {where}" for case in args.only]
    else:
        print(f"data: {work.name} ({len(work.train_idx)} train / {len(work.val_idx)} val, {work.img_size} px)",
              flush=True)
        from benchmarks.pairs import shared_fresh_process

        try:
            with shared_fresh_process(args.smoke):  # the smoke run's plain sides share one spawned interpreter
                for case in args.only:
                    repeats = args.repeats or (1 if args.smoke else FULL_REPEATS[case])
                    try:
                        report["rows"] += [row.as_dict() for row in run_case(case, work, repeats)]
                    except Exception as exc:  # noqa: BLE001 - one broken case must not hide the others' numbers
                        traceback.print_exc()
                        report["errors"].append(f"{case}: {type(exc).__name__}: {exc}")
        finally:
            work.cleanup()
    report["load_average_1min_end"] = load_average()
    report["seconds"] = round(time.perf_counter() - started, 1)
    table = markdown_table(report["rows"])
    report["table_markdown"] = table
    print()
    print(machine_line(machine) + f" -> {report['load_average_1min_end']} at the end")
    print(table)
    for row in report["rows"]:
        if row["note"]:
            print(f"  {row['case']}: {row['note']}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{mode}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwritten {path} in {report['seconds']:.0f} s")
    for error in report["errors"]:
        print(f"error: {error}", file=sys.stderr)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
