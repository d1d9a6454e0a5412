"""Learned compression: a screen of latent refinement's steps and learning rate (docs/compression.md, "Refinement").

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.compress_refine runs/compress-hp-0.01 \
        --steps 50 100 200 --lrs 5e-3 1e-2 2e-2 --images 6

Scored on the run's own validation images (never the evaluation photos), centre-cropped to 256 x 256: for each
setting, the real .pfc file's bpp, the decoded image's PSNR, the rate-distortion loss `λ·255²·MSE + bpp` from
those two (the objective refinement lowers), and the process CPU seconds of one encode (one thread as run above).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

CROP = 256


def centre_crop(pixels: np.ndarray, size: int = CROP) -> np.ndarray:
    top, left = (pixels.shape[0] - size) // 2, (pixels.shape[1] - size) // 2
    return pixels[top:top + size, left:left + size]


def validation_crops(run: Path, count: int) -> list[np.ndarray]:
    from pixelforge.data.images import load_rgb
    from pixelforge.tasks.common.run import read_run
    from pixelforge.tasks.compress.data import split_images

    _, cfg, _, _ = read_run(run, "compress")
    files = split_images(cfg.data, cfg.val_fraction, cfg.seed)["val"]
    crops = [centre_crop(np.asarray(load_rgb(f))) for f in files]
    return [c for c in crops if c.shape[:2] == (CROP, CROP)][:count]


def score(images, codec, transforms, lmbda: float, refiner=None) -> dict:
    from pixelforge.deploy.runtime.learned_codec import compress_pixels, decompress_bytes
    from pixelforge.metrics.image_quality import psnr

    rows = []
    for pixels in images:
        cpu = time.process_time()
        data = compress_pixels(pixels, codec, transforms, refine=refiner)
        cpu = time.process_time() - cpu
        decoded = decompress_bytes(data, codec, transforms)
        bpp = 8 * len(data) / (pixels.shape[0] * pixels.shape[1])
        mse = float(np.mean((pixels.astype(np.float64) - decoded.astype(np.float64)) ** 2)) / 255 ** 2
        rows.append({"bpp": bpp, "psnr": psnr(pixels, decoded), "loss": lmbda * 255 ** 2 * mse + bpp, "cpu": cpu})
    return {k: statistics.mean(r[k] for r in rows) for k in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--lrs", type=float, nargs="+", default=[5e-3, 1e-2, 2e-2])
    parser.add_argument("--images", type=int, default=6)
    args = parser.parse_args()

    from pixelforge.tasks.compress.refine import LatentRefiner
    from pixelforge.tasks.compress.tables import load_trained, torch_transforms

    _, cfg, model, codec = load_trained(args.run)
    transforms = torch_transforms(model)
    images = validation_crops(args.run, args.images)
    print(f"{args.run} (λ={cfg.lambda_:g}), {len(images)} validation crops of {CROP} px; means per image")
    base = score(images, codec, transforms, cfg.lambda_)
    print(f"{'setting':>18} {'loss':>8} {'bpp':>7} {'PSNR':>7} {'Δloss':>7} {'Δbpp':>7} {'ΔPSNR':>6} {'encode CPU-s':>12}")

    def line(name, s):
        print(f"{name:>18} {s['loss']:8.4f} {s['bpp']:7.4f} {s['psnr']:7.2f} {s['loss'] - base['loss']:+7.4f} "
              f"{s['bpp'] - base['bpp']:+7.4f} {s['psnr'] - base['psnr']:+6.2f} {s['cpu']:12.2f}", flush=True)

    line("encoder (no refine)", base)
    for steps in args.steps:
        for lr in args.lrs:
            line(f"{steps} steps lr {lr:g}", score(images, codec, transforms, cfg.lambda_,
                                                    LatentRefiner(model, cfg.lambda_, steps, lr)))


if __name__ == "__main__":
    main()
