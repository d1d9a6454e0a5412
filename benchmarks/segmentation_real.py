"""Segmentation on a real photograph: scikit-image's `coins` (and `cell`), labelled by a classical method, as tiles.

    python -m benchmarks.segmentation_real                 # coins, ~2-4 min on 2 cores
    python -m benchmarks.segmentation_real --image cell --epochs 20 --out runs/seg-real

There is no hand-labelled real segmentation data on this machine, so the masks come from the method scikit-image's
"region-based segmentation" tutorial uses on these images: a Sobel elevation map flooded by watershed from
markers (dark = background, bright = object), holes filled, specks removed. The network learns to imitate that
labelling from a few 96 px tiles of one image; the question is qualitative — do the predicted overlays on the
held-out part of the image follow the coins' outlines? Tiles from the top 60% train; in the bottom 40% the left
half validates and the right half tests, so no test pixel was seen in training. The image is 8-bit grey, so the run uses
one input channel (the pretrained stem's RGB filters summed) and the data's own mean/std.

Writes OUT/data (the tile dataset), OUT/run (the run folder, report.html), OUT/full_overlay.png (the whole image
predicted in one pass) and prints a JSON line with the test mIoU and timings.
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

TILE, STRIDE = 96, 48
CLASSES = {"coins": ["background", "coin"], "cell": ["background", "cell"]}


def classical_mask(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Watershed on the Sobel elevation map from dark (background) and bright (object) markers; holes filled."""
    from scipy import ndimage as ndi
    from skimage import filters, morphology, segmentation

    elevation = filters.sobel(image)
    markers = np.zeros_like(image, dtype=np.uint8)
    markers[image < low] = 1
    markers[image > high] = 2
    labels = segmentation.watershed(elevation, markers) == 2
    labels = ndi.binary_fill_holes(labels)
    return morphology.remove_small_objects(labels, max_size=30).astype(np.uint8)


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    from skimage import data, filters

    image = getattr(data, name)()
    if name == "coins":
        return image, classical_mask(image, 30, 150)  # the tutorial's marker thresholds for coins
    smooth = filters.gaussian(image, 2, preserve_range=True)
    otsu = filters.threshold_otsu(smooth)
    return image, classical_mask(smooth, otsu * 0.8, otsu * 1.1)


def _starts(start: int, stop: int) -> list[int]:
    """Tile origins covering [start, stop): every STRIDE px, plus one flush with the end."""
    last = stop - TILE
    return sorted(set(range(start, last + 1, STRIDE)) | {last}) if last >= start else []


def write_tiles(image: np.ndarray, mask: np.ndarray, root: Path, classes: list[str]) -> Path:
    """Overlapping TILE px tiles: the top 60% of the image -> train; the bottom 40%: left half val, right half test.

    No tile crosses a region's border, so no test pixel is ever seen in training.
    """
    height, width = image.shape
    cut = int(height * 0.6)
    regions = {"train": (0, cut, 0, width), "val": (cut, height, 0, width // 2), "test": (cut, height, width // 2, width)}
    for split, (top, bottom, left, right) in regions.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        for y in _starts(top, bottom):
            for x in _starts(left, right):
                name = f"{split}_{y:04d}_{x:04d}.png"
                Image.fromarray(image[y:y + TILE, x:x + TILE]).save(root / "images" / split / name)
                Image.fromarray(mask[y:y + TILE, x:x + TILE], mode="L").save(root / "masks" / split / name)
    (root / "classes.json").write_text(json.dumps(classes))
    return root


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.segmentation_real", description=__doc__.splitlines()[0])
    parser.add_argument("--image", choices=sorted(CLASSES), default="coins")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--out", type=Path, default=Path("runs") / "segmentation-real")
    args = parser.parse_args(argv)

    import pixelforge
    from pixelforge.tasks.segment.evaluate import evaluate_segmentation, load_segmentation_run, predict_full_resolution
    from pixelforge.viz.segmentation import plot_triplets

    image, mask = load(args.image)
    data = write_tiles(image, mask, args.out / f"data-{args.image}", CLASSES[args.image])
    started = time.perf_counter()
    result = pixelforge.train(str(data), task="segment", arch=args.arch, img_size=TILE, epochs=args.epochs,
                              batch_size=8, strategy="full", lr=2e-3, augment="standard",
                              out=str(args.out / f"run-{args.image}"), quiet=True)
    seconds = time.perf_counter() - started
    test = evaluate_segmentation(result.run_dir, split="test").metrics
    run = load_segmentation_run(result.run_dir)
    # The whole image in one pass (shorter side resized to img_size as in training would shrink it: keep it whole).
    run.config = run.config.model_copy(update={"img_size": min(image.shape)})
    full = predict_full_resolution(run, image[..., None])
    figure = plot_triplets([(np.repeat(image[..., None], 3, 2), mask.astype(np.int64), full, f"{args.image} (whole)")],
                           CLASSES[args.image], args.out / f"full_overlay_{args.image}.png")
    agreement = float((full == mask).mean())
    summary = {"image": args.image, "tiles": {s: len(list((data / "images" / s).glob("*.png"))) for s in ("train", "val", "test")},
               "epochs": args.epochs, "train_seconds": round(seconds, 1), "test_miou": test["miou"],
               "test_per_class_iou": test["per_class_iou"], "whole_image_pixel_agreement": round(agreement, 4),
               "run": str(result.run_dir), "overlay": str(figure)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
