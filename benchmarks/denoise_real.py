"""Denoising on real colour photos the model never saw: ours beside NL-means, wavelet and BM3D, one table.

    pixelforge train --task denoise --data ../shared/data/hymenoptera/train --noise gaussian:25 --out runs/denoise-s25
    python -m benchmarks.denoise_real --run runs/denoise-s25          # + ~1-3 min on 2 cores (BM3D most of it)
    python -m benchmarks.denoise_real                                   # the classical methods alone

scikit-image's sample photos (astronaut, coffee, chelsea, rocket: 300-640 px colour, none of them ants or bees)
are written to OUT/photos; `pixelforge evaluate RUN --data OUT/photos` scores the noisy input, non-local means,
wavelet and the run on the very same noisy images (noise seeded by the run's seed and each file's name). BM3D
(Dabov et al. 2007; the `bm3d` package, `pip install bm3d`, benchmark only: its licence keeps it out of
pixelforge's dependencies) is run here on the same noisy images, told the true sigma, which favours it. BM3D
results are cached in OUT/bm3d.json (keyed by noise, seed and image) since they do not depend on the run.

Prints a markdown table and writes OUT/denoise_benchmark.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def write_photos(folder: Path) -> list[Path]:
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PHOTOS:
        path = folder / f"{name}.png"
        if not path.exists():
            Image.fromarray(getattr(data, name)()).save(path)
        paths.append(path)
    return paths


def noisy_photo(path: Path, noise: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) exactly as `pixelforge evaluate` makes them (evaluate.noisy_version)."""
    from pixelforge.data.masks.images import load_image_any
    from pixelforge.data.noise import parse_noise, quantize, rng_for, to_unit

    clean = load_image_any(path)
    return clean, quantize(parse_noise(noise).apply(to_unit(clean), rng_for(seed, path.name)), clean.dtype)


def bm3d_scores(paths: list[Path], noise: str, seed: int, cache: Path) -> dict | None:
    """Mean PSNR/SSIM of BM3D (colour, true sigma), or None where `bm3d` is not installed or the noise not gaussian."""
    try:
        import bm3d
    except ImportError:
        print("bm3d is not installed (pip install bm3d): its row is left out")
        return None
    from pixelforge.data.noise import parse_noise, quantize, to_unit
    from pixelforge.metrics.image_quality import image_scores, mean_scores

    sigma = parse_noise(noise).gaussian_sigma
    if sigma is None:
        return None
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    rows, seconds = [], []
    for path in paths:
        key = f"{noise}|{seed}|{path.name}"
        if key not in known:
            clean, noisy = noisy_photo(path, noise, seed)
            started = time.process_time()
            out = bm3d.bm3d_rgb(to_unit(noisy), sigma / 255.0)
            known[key] = {**image_scores(quantize(out, clean.dtype), clean), "cpu_seconds": time.process_time() - started}
            cache.write_text(json.dumps(known, indent=1))
        rows.append(known[key])
        seconds.append(known[key]["cpu_seconds"])
    return {**mean_scores(rows), "cpu_seconds_per_image": float(np.mean(seconds))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a denoise run folder to score (default: the classical methods alone)")
    parser.add_argument("--noise", default="gaussian:25", help="without --run: the noise (with it: the run's)")
    parser.add_argument("--out", default="runs/denoise-benchmark", help="folder for the photos and results")
    args = parser.parse_args()
    out = Path(args.out)
    paths = write_photos(out / "photos")
    table = {}
    noise, seed = args.noise, 0
    if args.run:
        from pixelforge import evaluate
        from pixelforge.tasks.config import load_config

        cfg = load_config(Path(args.run) / "config.yaml")
        noise, seed = cfg.noise, cfg.seed
        metrics = evaluate(args.run, data=str(out / "photos"), out=out / "eval").metrics
        table["noisy input"] = {"psnr": metrics["psnr_noisy"], "ssim": metrics["ssim_noisy"],
                                "ms_ssim": metrics["ms_ssim_noisy"]}
        table.update(metrics["baselines"])
        table["ours"] = {k: metrics[k] for k in ("psnr", "ssim", "ms_ssim", "seconds_per_image")}
        table["per_image"] = metrics["per_image"]
    else:
        from pixelforge.tasks.denoise.baselines import BASELINES, run_baseline
        from pixelforge.metrics.image_quality import image_scores, mean_scores

        pairs = [noisy_photo(p, noise, seed) for p in paths]
        table["noisy input"] = mean_scores([image_scores(n, c) for c, n in pairs])
        for name in BASELINES:
            table[name] = mean_scores([image_scores(run_baseline(name, n), c) for c, n in pairs])
    bm3d = bm3d_scores(paths, noise, seed, out / "bm3d.json")
    if bm3d:
        table["bm3d (true sigma)"] = bm3d
    (out / "denoise_benchmark.json").write_text(json.dumps({"noise": noise, "seed": seed, "run": args.run,
                                                             "photos": list(PHOTOS), "table": table}, indent=1))
    print(f"noise {noise}, seed {seed}, photos: {', '.join(PHOTOS)}\n")
    print("| method | PSNR (dB) | SSIM | MS-SSIM |\n|---|---|---|---|")
    for name, row in table.items():
        if name != "per_image":
            ms = row.get("ms_ssim")
            print(f"| {name} | {row['psnr']:.2f} | {row['ssim']:.4f} | {'-' if ms is None else f'{ms:.4f}'} |")
    print(f"\nwritten: {out / 'denoise_benchmark.json'}")


if __name__ == "__main__":
    main()
