"""`--lr auto`'s suggestion rule against the one it replaced, and against fixed rates, on built-in data.

    python -m benchmarks.lr_find_rules [--seeds 0,1,2] [--rates 1e-3,3e-3,1e-2,2e-2] [--epochs 2]

Trains digits with Lite0 (ImageNet, full fine-tuning, 32 px, batch 16) under `--lr auto` for each seed, recording
the rate that `suggest_lr` picks and the rate that the steepest slope over the whole curve (the rule before) would
have picked from the same range test; then trains the same recipe at each fixed rate. Prints one table of best
validation accuracies and writes it to `benchmarks/results/lr-find-rules-*.json`. One PyTorch thread; ~6 minutes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

RECIPE = dict(model="tf_efficientnet_lite0", weights="imagenet", strategy="full", img_size=32, batch_size=16,
              quiet=True)


def steepest_over_the_whole_curve(lrs: list[float], losses: list[float]) -> float:
    """The rule `suggest_lr` replaced (also Lightning's), kept here to compare with."""
    stop = int(np.argmin(losses)) + 1
    if stop <= 2:
        return lrs[max(0, stop - 1)] / 10
    return float(lrs[int(np.argmin(np.gradient(np.asarray(losses[:stop]), np.log(np.asarray(lrs[:stop])))))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rates", default="1e-3,3e-3,1e-2,2e-2")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    import torch

    import pixelforge
    import pixelforge.engine.lr_find as lr_find

    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    suggested = lr_find.suggest_lr
    old_picks = []

    def recording(lrs, losses):  # the same curve, both rules
        old_picks.append(steepest_over_the_whole_curve(lrs, losses))
        return suggested(lrs, losses)

    lr_find.suggest_lr = recording
    rows = []
    with tempfile.TemporaryDirectory() as work:
        def train(lr, seed):
            started = time.perf_counter()
            result = pixelforge.train("digits", out=f"{work}/{lr}-{seed}", lr=lr, seed=seed, epochs=args.epochs,
                                      **RECIPE)
            rate = json.loads((result.run_dir / "summary.json").read_text())["lr"]
            return rate, result.best_val_accuracy, time.perf_counter() - started

        for seed in seeds:
            rate, accuracy, seconds = train("auto", seed)
            rows.append({"arm": "auto", "seed": seed, "lr": rate, "old_rule_lr": old_picks[-1],
                         "val_acc": accuracy, "seconds": round(seconds, 1)})
            print(f"auto, seed {seed}: suggested {rate:.1e} (the old rule: {old_picks[-1]:.1e}), val acc "
                  f"{accuracy:.3f}", flush=True)
        for rate in [float(r) for r in args.rates.split(",")]:
            for seed in seeds:
                _, accuracy, seconds = train(rate, seed)
                rows.append({"arm": "fixed", "seed": seed, "lr": rate, "val_acc": accuracy, "seconds": round(seconds, 1)})
                print(f"fixed {rate:.0e}, seed {seed}: val acc {accuracy:.3f}", flush=True)
    print(f"\ndigits, Lite0 full fine-tuning at 32 px, {args.epochs} epochs, seeds {args.seeds}: best val accuracy\n")
    print("| rate | mean val acc | per seed |\n| --- | --- | --- |")
    arms = [("--lr auto (" + ", ".join(f"{r['lr']:.1e}" for r in rows if r["arm"] == "auto") + ")",
             [r for r in rows if r["arm"] == "auto"])]
    arms += [(f"{rate:.0e}", [r for r in rows if r["arm"] == "fixed" and r["lr"] == rate])
             for rate in dict.fromkeys(r["lr"] for r in rows if r["arm"] == "fixed")]
    for name, group in arms:
        accuracies = [r["val_acc"] for r in group]
        print(f"| {name} | {statistics.mean(accuracies):.3f} | {', '.join(f'{a:.3f}' for a in accuracies)} |")
    print("\nthe old rule would have suggested: " + ", ".join(f"{r['old_rule_lr']:.1e}" for r in rows if r["arm"] == "auto"))
    out = Path(__file__).parent / "results" / f"lr-find-rules-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"recipe": RECIPE, "epochs": args.epochs, "rows": rows}, indent=1))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
