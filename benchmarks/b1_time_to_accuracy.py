"""B1, time to accuracy: the plain tutorial loop's best validation accuracy over 3 epochs, and when it got there,
against the wall time `pixelforge.train` (all defaults: linear strategy, cached features) needs to reach 95%.

Both clocks start before any data is read or any model is built, and stop at the end of the validation pass of the
epoch that first reaches the mark; the plain loop's models and pixelforge's see the same train/val split.
"""

from __future__ import annotations

import time

from benchmarks.pairs import FreshProcess, Row, TargetTimer, alternate, captured_log, fill
from benchmarks.plain import plain_training
from benchmarks.workload import Workload


def plain_side(work: Workload) -> dict:
    result = plain_training(work.root, work.train_idx, work.val_idx, work.img_size, work.plain_epochs,
                            work.batch_size, work.workers, seed=work.seed)
    best = max(e["val_acc"] for e in result["epochs"])
    first_best = next(e for e in result["epochs"] if e["val_acc"] == best)
    return {**result, "best_val_acc": best, "best_epoch": first_best["epoch"],
            "time_to_best_s": first_best["elapsed_s"]}


def pixelforge_side(work: Workload, run_index: list[int]) -> dict:
    import pixelforge
    from pixelforge.engine.fabric import lightning_fabric

    from pixelforge.api import train  # noqa: F401

    lightning_fabric()  # imports are done before the clock starts, as the plain side's are
    run_index[0] += 1
    timer = TargetTimer(work.target)
    with captured_log() as lines:
        result = pixelforge.train(str(work.root), out=str(work.scratch / f"b1-{run_index[0]}"), quiet=True,
                                  callbacks=[timer], seed=work.seed, **work.pixelforge_options)
    return {"time_to_target_s": timer.reached_s, "target_epoch": timer.reached_epoch, "epochs": timer.epochs,
            "best_val_acc": result.best_val_accuracy, "path": result.path,
            "wall_s_with_report": round(time.perf_counter() - timer.started, 2),
            "log": [line for line in lines if "features" in line or "training" in line]}


def run(work: Workload, repeats: int, say=print) -> list[Row]:
    say(f"B1 time to accuracy: plain loop ({work.plain_epochs} epochs, its best) vs pixelforge train "
        f"(defaults, to {work.target:.0%})")
    counter = [0]
    runs = alternate(FreshProcess(plain_side, work), lambda: pixelforge_side(work, counter), repeats, say)
    row = Row("B1", f"time to accuracy, s (plain: its best in {work.plain_epochs} ep; pixelforge: {work.target:.0%})",
              "s", False, "ImageFolder+PIL, full fine-tune, SGD", "pixelforge train (defaults)", goal=6.0)
    fill(row, runs, lambda r: r.get("time_to_best_s", r.get("time_to_target_s")))
    last = runs[-1]
    plain, ours = last["baseline"]["result"], last["pixelforge"]["result"]
    row.details = {"plain_best_val_acc": plain["best_val_acc"], "plain_best_epoch": plain["best_epoch"],
                   "pixelforge_best_val_acc": ours["best_val_acc"], "pixelforge_target_epoch": ours["target_epoch"],
                   "pixelforge_path": ours["path"], "pixelforge_log": ours["log"]}
    if ours["time_to_target_s"] is None:
        row.note = f"pixelforge did not reach {work.target:.0%} (best {ours['best_val_acc']:.3f})"
    else:
        row.note = (f"plain best {plain['best_val_acc']:.3f} at epoch {plain['best_epoch']}; pixelforge "
                    f"{ours['best_val_acc']:.3f} best, {work.target:.0%} at epoch {ours['target_epoch']}")
    return [row]
