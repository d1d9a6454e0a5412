"""B1W, the whole process: from the shell command to the finished result, as a user counts it.

Both sides are new processes started here and timed from launch to exit, imports and all:
- plain: the tutorial loop as a user's script (`python -m benchmarks.plain_script`): imports torch, torchvision and
  timm, builds ImageFolder datasets and Lite0, trains ONE epoch (full fine-tune, SGD) and scores the val split;
- pixelforge: `pixelforge train --data ROOT --out RUN` with its defaults: decoding, features, the head, calibration,
  the report and the model card, until the run folder is complete.

pixelforge's exported feature graph is cached in `$PIXELFORGE_HOME` (tasks/classify/features.py): the row uses a
home that already holds it (every run after a user's first), and the lever row L12 times the first run on a new
home against it. L13 times the report written after training with the training's validation features against the
eager re-evaluation it replaced; L14 4 augmented feature views (the default before round two) against 1 (now); L15
the process with CPython's default garbage-collector settings against the command's (`pixelforge/__main__.py`); L16
the command with the libraries it imported before round four (the whole `lightning` package, torchmetrics,
scikit-learn's metrics, pytorch_grad_cam) imported first, against the command as it is (engine/fabric.py).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.pairs import Row
from benchmarks.workload import Workload

PIXELFORGE = [sys.executable, "-m", "pixelforge"]  # what the `pixelforge` script runs (pixelforge/__main__.py)
DEFAULT_GC = [sys.executable, "-c", "from pixelforge.cli import main; main()"]  # the CLI without __main__'s settings
# What a training imported before L16, those of them installed (`lightning` itself is no longer a dependency).
OLD_IMPORTS = [sys.executable, "-c", "import importlib, importlib.util; "
               "[importlib.import_module(m) for m in ('lightning', 'lightning_fabric', 'torchmetrics', "
               "'sklearn.metrics', 'pytorch_grad_cam') if importlib.util.find_spec(m.split('.')[0])]; "
               "from pixelforge.__main__ import main; main()"]


def timed_process(command: list[str], env: dict | None = None) -> dict:
    """Run `command` to its end: its wall seconds, CPU seconds and peak RSS (the child's own, from wait4), stdout."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])}... exited {process.returncode}: {stderr.strip()[-800:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "rss_peak_mb": round(usage.ru_maxrss / 1024), "stdout": stdout}


def plain_process(work: Workload) -> dict:
    split = work.scratch / "b1w-split.json"
    split.write_text(json.dumps({"train": work.train_idx, "val": work.val_idx}))
    command = [sys.executable, "-m", "benchmarks.plain_script", str(work.root), str(split), str(work.img_size),
               str(work.batch_size), str(work.workers), str(work.seed)]
    result = timed_process(command, env={**os.environ, "PYTHONPATH": _pythonpath()})
    result["val_acc"] = json.loads(result.pop("stdout").strip().splitlines()[-1])["val_acc"]
    return result


def pixelforge_process(work: Workload, home: Path, name: str, *options: str, entry: list[str] = PIXELFORGE) -> dict:
    run = work.scratch / name
    command = [*entry, "train", "--data", str(work.root), "--out", str(run), "--seed", str(work.seed),
               *[f"--{k.replace('_', '-')}={v}" for k, v in work.pixelforge_options.items()], *options]
    result = timed_process(command, env={**os.environ, "PIXELFORGE_HOME": str(home)})
    result.pop("stdout")
    summary = json.loads((run / "summary.json").read_text())
    result.update(val_acc=summary["best_val_accuracy"], seconds_total=summary.get("seconds_total"),
                  report=(run / "report.html").is_file())
    return result


def _pythonpath() -> str:
    root = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)


def run(work: Workload, repeats: int, say=print) -> list[Row]:
    say("B1W whole process: the plain loop's script (1 epoch) vs `pixelforge train` (defaults), launch to exit")
    home = work.scratch / "pixelforge-home"
    cold = pixelforge_process(work, home, "b1w-cold")  # a new home: the first run exports the feature graph
    say(f"    pixelforge, new PIXELFORGE_HOME: {cold['wall_s']:.1f} s")
    plain, ours, four_views, default_gc, old_imports = [], [], [], [], []
    for index in range(max(repeats, 1)):
        sides = [("plain", lambda: plain_process(work)),
                 ("pixelforge", lambda: pixelforge_process(work, home, f"b1w-{index}")),
                 ("4 views", lambda: pixelforge_process(work, home, f"b1w-4views-{index}", "--feature-views=4")),
                 ("default GC", lambda: pixelforge_process(work, home, f"b1w-gc-{index}", entry=DEFAULT_GC)),
                 ("old imports", lambda: pixelforge_process(work, home, f"b1w-imports-{index}", entry=OLD_IMPORTS))]
        if index % 2:
            sides.reverse()
        for label, side in sides:
            result = side()
            {"plain": plain, "pixelforge": ours, "4 views": four_views, "default GC": default_gc,
             "old imports": old_imports}[label].append(result)
            say(f"    {label:<10} {result['wall_s']:6.1f} s wall, {result['cpu_s']:6.1f} s CPU, "
                f"val acc {result['val_acc']:.3f}")
    median = lambda rs: round(statistics.median(r["wall_s"] for r in rs), 2)  # noqa: E731
    peak = lambda rs: max(r["rss_peak_mb"] for r in rs)  # noqa: E731
    row = Row("B1W", "whole process, s (shell to result; plain: 1 epoch + val)", "s", False,
              "tutorial script, first epoch", "pixelforge train (defaults)", median(plain), median(ours), goal=6.0)
    row.repeats = {"plain": plain, "pixelforge": ours}
    row.baseline_rss_mb, row.pixelforge_rss_mb = peak(plain), peak(ours)  # whole processes: peak, not added
    row.note = (f"val accuracy: plain {statistics.median(r['val_acc'] for r in plain):.3f} after its epoch, "
                f"pixelforge {statistics.median(r['val_acc'] for r in ours):.3f} best")
    cache = Row("L12", "pixelforge train whole process, s", "s", False, "new PIXELFORGE_HOME (exports the graph)",
                "cached feature graph", cold["wall_s"], median(ours), baseline_rss_mb=cold["rss_peak_mb"],
                pixelforge_rss_mb=peak(ours))
    views = Row("L14", "pixelforge train whole process, s", "s", False, "4 feature views (before)", "1 view (default)",
                median(four_views), median(ours), baseline_rss_mb=peak(four_views), pixelforge_rss_mb=peak(ours))
    views.note = (f"best val accuracy: 4 views {[r['val_acc'] for r in four_views]}, "
                  f"1 view {[r['val_acc'] for r in ours]}")
    collector = Row("L15", "pixelforge train whole process, s", "s", False, "CPython's default GC settings",
                    "the command's (pixelforge/__main__.py)", median(default_gc), median(ours),
                    baseline_rss_mb=peak(default_gc), pixelforge_rss_mb=peak(ours))
    imports = Row("L16", "pixelforge train whole process, s", "s", False,
                  "+ lightning, torchmetrics, sklearn.metrics, pytorch_grad_cam (before)", "only what the path uses",
                  median(old_imports), median(ours), baseline_rss_mb=peak(old_imports), pixelforge_rss_mb=peak(ours))
    imports.note = f"CPU s: before {[r['cpu_s'] for r in old_imports]}, now {[r['cpu_s'] for r in ours]}"
    return [row, cache, report_reuse_row(work, home), views, collector, imports]


def report_reuse_row(work: Workload, home: Path) -> Row:
    """L13: writing the report after training from the training's validation features vs a second eager pass."""
    os.environ["PIXELFORGE_HOME"] = str(home)
    import pixelforge
    from pixelforge.tasks.classify.evaluate import select_samples
    from pixelforge.tasks.classify.features import FeatureExtractor
    from pixelforge.tasks.classify.inference import CachedFeatures, load_run
    from pixelforge.tasks.classify.report import write_run_report
    from pixelforge.data.dataset import ImageDataset

    run = pixelforge.train(str(work.root), out=str(work.scratch / "b1w-report"), quiet=True, seed=work.seed,
                           **work.pixelforge_options).run_dir
    loaded = load_run(run)
    samples, _, _ = select_samples(loaded, None, None)
    dataset = ImageDataset(samples, {c: i for i, c in enumerate(loaded.classes)}, loaded.short_side, loaded.transform)
    dataset.preload()
    extractor = FeatureExtractor(loaded.model.backbone)
    features = extractor(__import__("torch").stack([dataset[i][0] for i in range(len(dataset))]))
    cached = CachedFeatures([s.path for s in dataset.samples], features)  # what training handed the report
    seconds = {}
    for name, given in (("eager", None), ("reused", cached)) * 2:
        started = time.perf_counter()
        write_run_report(run, cached=given)
        seconds.setdefault(name, []).append(time.perf_counter() - started)
    return Row("L13", "report after training, s", "s", False, "second eager pass over val",
               "the training's val features", round(min(seconds["eager"]), 2), round(min(seconds["reused"]), 2),
               baseline_rss_mb=0.0, pixelforge_rss_mb=0.0)  # in this process: memory not measured
