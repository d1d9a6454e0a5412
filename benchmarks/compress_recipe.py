"""Learned compression: a screen of training recipes at equal CPU time (docs/compression.md, "Choosing the recipe").

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.compress_recipe ../shared/data/hymenoptera/train \
        --out runs/recipe-screen --cpu-seconds 300

Each recipe trains `pixelforge train --task compress` for the same process CPU time (one thread, no data
workers: the CPU clock then counts all the work), stopped by a hook; then its last checkpoint is scored on the
run's own validation images (never the evaluation photos), all centre-cropped to the same 256 x 256 pixels, so
recipes with different training crops are compared on the same pixels: the rate-distortion loss at the screen's
λ, the estimated bpp of the rounded latents, and the PSNR of the mean MSE.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

# name: the options that differ from the shared ones (model hyperprior, λ and the data below)
RECIPES = {
    "64px-n64-lr3e-4-b8": {"img_size": 64, "channels_n": 64, "channels_m": 96, "lr": 3e-4, "batch_size": 8,
                           "crops_per_image": 16},  # the recipe of round four
    "128px-n64-lr1e-3-b8": {"img_size": 128, "channels_n": 64, "channels_m": 96, "lr": 1e-3, "batch_size": 8,
                            "crops_per_image": 4},
    "128px-n64-lr3e-4-b8": {"img_size": 128, "channels_n": 64, "channels_m": 96, "lr": 3e-4, "batch_size": 8,
                            "crops_per_image": 4},
    "256px-n64-lr1e-3-b2": {"img_size": 256, "channels_n": 64, "channels_m": 96, "lr": 1e-3, "batch_size": 2,
                            "crops_per_image": 2},  # as many pixels a step as 8 crops of 128 px
    "128px-n128-lr1e-3-b8": {"img_size": 128, "channels_n": 128, "channels_m": 192, "lr": 1e-3, "batch_size": 8,
                             "crops_per_image": 2},
}
SCORE_SIZE = 256


class CpuBudget:
    """A hook that ends training once the process has used `seconds` of CPU time since the fit started."""

    def __init__(self, seconds: float):
        self.seconds, self.start, self.steps = seconds, 0.0, 0

    def on_fit_start(self, ctx) -> None:
        self.start = time.process_time()

    def on_train_batch_end(self, ctx, outputs) -> None:
        from pixelforge.engine.hooks import StopTraining

        self.steps += 1
        if time.process_time() - self.start >= self.seconds:
            raise StopTraining(f"CPU budget of {self.seconds:g} s spent")


@torch.no_grad()
def score(run: Path, lmbda: float) -> dict:
    """RD loss, estimated bpp and PSNR of the run's last checkpoint on its validation images' 256 px centre crops."""
    from compressai.losses import RateDistortionLoss
    from torchvision.transforms import v2

    from pixelforge.data.images import load_rgb
    from pixelforge.runs import folder as rd
    from pixelforge.tasks.compress.data import split_images
    from pixelforge.tasks.compress.models import build_model
    from pixelforge.tasks.config import load_config

    cfg = load_config(run / "config.yaml")
    model = build_model(cfg)
    model.load_state_dict(rd.load_checkpoint(run / "checkpoints" / "last.ckpt")["model"])
    model.eval()
    crop = v2.Compose([v2.ToImage(), v2.CenterCrop(SCORE_SIZE), v2.ToDtype(torch.float32, scale=True)])
    criterion = RateDistortionLoss(lmbda=lmbda)
    losses, bpps, mses = [], [], []
    for path in split_images(cfg.data, cfg.val_fraction, cfg.seed)["val"]:
        x = crop(load_rgb(path))[None]
        out = criterion(model(x), x)
        losses.append(float(out["loss"]))
        bpps.append(float(out["bpp_loss"]))
        mses.append(float(out["mse_loss"]))
    n = len(losses)
    return {"loss": sum(losses) / n, "bpp": sum(bpps) / n, "psnr": 10 * math.log10(1 / (sum(mses) / n)), "images": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--out", type=Path, default=Path("runs/recipe-screen"))
    parser.add_argument("--cpu-seconds", type=float, default=300.0)
    parser.add_argument("--lambda", dest="lmbda", type=float, default=0.008)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated names of RECIPES")
    args = parser.parse_args()

    import pixelforge

    rows = []
    for name in args.recipes.split(","):
        budget = CpuBudget(args.cpu_seconds)
        run = pixelforge.train(args.data, task="compress", model="hyperprior", lambda_=args.lmbda, epochs=1000,
                               workers=0, quiet=True, out=str(args.out / name), callbacks=[budget],
                               **RECIPES[name]).run_dir
        cpu = time.process_time() - budget.start
        rows.append((name, budget.steps, cpu, score(run, args.lmbda)))
        print(f"{name}: {budget.steps} steps in {cpu:.0f} CPU-s -> {rows[-1][3]}", flush=True)
    print(f"\nλ={args.lmbda:g}, {args.cpu_seconds:g} CPU-s each; scored on {rows[0][3]['images']} validation images, "
          f"{SCORE_SIZE} px centre crops")
    print(f"| recipe | steps | CPU s | RD loss | bpp (estimate) | PSNR dB |\n| --- | --- | --- | --- | --- | --- |")
    for name, steps, cpu, s in rows:
        print(f"| {name} | {steps} | {cpu:.0f} | {s['loss']:.4f} | {s['bpp']:.3f} | {s['psnr']:.2f} |")


if __name__ == "__main__":
    main()
