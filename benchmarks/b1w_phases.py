"""B1W's phases, before and after a change: `pixelforge train` (defaults) from two source trees, side by side.

    python -m benchmarks.b1w_phases --before 2513860 --repeats 5   # round five's code vs this checkout

Both sides are whole processes (`python -m pixelforge train --data ROOT --out RUN --seed 0`), started alternately
(before, after, after, before, ...) with one shared `$PIXELFORGE_HOME` that already holds each side's feature graph,
so a busy machine's drift falls on both alike. The `before` tree is `git archive REV src`, unpacked into the scratch
folder. Each line the command prints is stamped with the wall seconds since launch and the process's CPU seconds
(user + system, all its threads, read from /proc), and the phases are the gaps between the lines that start them:

    start       launch -> "run folder:"              the interpreter, the imports, config and data checks
    setup       -> "linear strategy:"                building the model, decoding the photos
    features    -> "backbone features computed"      ONNX Runtime over train and val
    head        -> the last "epoch N:" line          the head's epochs and their checkpoints (lever L18)
    calibrate   -> "calibration:"                    the temperature fit (L19) and its model load (L20)
    report      -> "best ..."                        report.html (Grad-CAM gallery, figures) and model_card.md
    exit        -> the process's end                 the interpreter's shutdown

Medians per phase and in all, with each side's best validation accuracy (the same seed and split: a change that
is exact leaves it as it was).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"
PHASES = [("start", "run folder:"), ("setup", "linear strategy:"), ("features", "backbone features computed"),
          ("head", "epoch "), ("calibrate", "calibration:"), ("report", "best ")]


def source_tree(revision: str, scratch: Path) -> Path:
    """`revision`'s src/ unpacked under `scratch` (its PYTHONPATH entry)."""
    out = scratch / f"src-{revision}"
    if not out.is_dir():
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src"], check=True,
                                 capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(out, filter="data")
    return out / "src"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stamped_run(src: Path, data: Path, run: Path, home: Path) -> dict:
    """One `pixelforge train`: (wall, cpu) at the start of every phase's line, the totals, the best val accuracy."""
    env = {**os.environ, "PYTHONPATH": str(src), "PIXELFORGE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "pixelforge", "train", "--data", str(data), "--out", str(run), "--seed", "0"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               stdin=subprocess.DEVNULL)
    marks, lines = {}, []
    for line in process.stdout:
        lines.append(line)
        stamp = (time.perf_counter() - started, _cpu_seconds(process.pid))
        for name, prefix in PHASES:
            if line.lstrip().startswith(prefix) and (name == "head" or name not in marks):
                marks[name] = stamp  # "head": the last epoch line wins
    _, status, usage = os.wait4(process.pid, 0)
    total = (time.perf_counter() - started, usage.ru_utime + usage.ru_stime)
    if os.waitstatus_to_exitcode(status) != 0 or len(marks) != len(PHASES):
        raise RuntimeError(f"{src}: exit {status}, phases seen {sorted(marks)}:\n{''.join(lines[-20:])}")
    ends = [marks[name] for name, _ in PHASES] + [total]
    phases = {name: (ends[i][0] - (ends[i - 1][0] if i else 0.0), ends[i][1] - (ends[i - 1][1] if i else 0.0))
              for i, name in enumerate([n for n, _ in PHASES] + ["exit"])}
    summary = json.loads((run / "summary.json").read_text())
    return {"phases": phases, "total": total, "val_acc": summary["best_val_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="a git revision whose src/ is the baseline")
    parser.add_argument("--after", default=None, help="a git revision (default: this checkout's src/)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="b1w-phases-"))
    trees = {"before": source_tree(args.before, scratch),
             "after": source_tree(args.after, scratch) if args.after else ROOT / "src"}
    home = scratch / "home"
    for side, tree in trees.items():  # each side's feature graph exported once, untimed (their cache keys may differ)
        stamped_run(tree, args.data, scratch / f"warm-{side}", home)
    results = {"before": [], "after": []}
    for index in range(args.repeats):
        for side in (("before", "after") if index % 2 == 0 else ("after", "before")):
            result = stamped_run(trees[side], args.data, scratch / f"{side}-{index}", home)
            results[side].append(result)
            print(f"  {side:<6} {result['total'][0]:6.2f} s wall {result['total'][1]:6.2f} s CPU  "
                  f"val acc {result['val_acc']:.4f}", flush=True)
    print(f"\nmedians of {args.repeats} (wall s / CPU s); before = {args.before}, after = {args.after or 'checkout'}")
    print(f"{'phase':<10} {'before':>15} {'after':>15} {'ratio (wall)':>13}")
    for name in [n for n, _ in PHASES] + ["exit", "total"]:
        row = []
        for side in ("before", "after"):
            pairs = [r["total"] if name == "total" else r["phases"][name] for r in results[side]]
            row.append((statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)))
        print(f"{name:<10} {row[0][0]:6.2f} / {row[0][1]:6.2f} {row[1][0]:6.2f} / {row[1][1]:6.2f} "
              f"{row[0][0] / max(row[1][0], 1e-9):12.2f}x")
    for side in ("before", "after"):
        print(f"best val accuracy, {side}: {[r['val_acc'] for r in results[side]]}")
    out = ROOT / "benchmarks" / "results" / f"b1w-phases-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"before": args.before, "after": args.after, "results": results}, indent=1))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
