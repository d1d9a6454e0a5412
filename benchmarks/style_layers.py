"""Which EfficientNet-Lite0 layers and weights make good style transfer? The comparison behind the defaults.

Runs `stylize` by optimisation (L-BFGS, same steps) with several layer sets and style weights on one photo and
writes a labelled grid (style-layers.png) to judge by eye, with each run's seconds and losses in its own network.

    PYTHONPATH=src python benchmarks/style_layers.py OUT_FOLDER [--size 256] [--steps 80]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parent))
from style_images import write_images  # noqa: E402

from pixelforge.tasks.style.gatys import Weights, stylize_by_optimisation  # noqa: E402
from pixelforge.tasks.style.images import read_image, to_pil  # noqa: E402
from pixelforge.tasks.style.lossnet import build_loss_network  # noqa: E402

EXPANSION = [f"blocks.{i}.0.bn1" for i in range(5)]  # post-ReLU6 expansion maps (strides 2, 2, 4, 8, 16)
OUTPUTS = [f"blocks.{i}" for i in range(5)]  # block outputs (linear projections; strides 2, 4, 8, 16, 16)
CONFIGS = {
    "A expansion, content blocks.3.0.bn1, style 10": (EXPANSION, ["blocks.3.0.bn1"], 10.0),
    "B block outputs, content blocks.2, style 10": (OUTPUTS, ["blocks.2"], 10.0),
    "D expansion, content blocks.3.0.bn1, style 3": (EXPANSION, ["blocks.3.0.bn1"], 3.0),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--photo", default="astronaut")
    args = parser.parse_args()
    out = Path(args.out)
    style_path, photos = write_images(out / "images")
    content = read_image(next(p for p in photos if p.stem == args.photo), args.size)
    style = read_image(style_path, args.size)
    tiles, rows = [("content", content), ("style", style)], []
    for label, (style_layers, content_layers, style_weight) in CONFIGS.items():
        net = build_loss_network("lite0", content_layers=content_layers, style_layers=style_layers)
        started = time.perf_counter()
        result = stylize_by_optimisation(net, content, style, steps=args.steps, weights=Weights(style=style_weight))
        seconds = time.perf_counter() - started
        last = result.history[-1]
        rows.append({"config": label, "seconds": round(seconds, 1), "content": last["content"], "style": last["style"]})
        print(json.dumps(rows[-1]), flush=True)
        tiles.append((f"{label[0]}: {seconds:.0f}s\nc {last['content']:.3f} s {last['style']:.3f}", result.image))
    grid = _grid(tiles)
    grid.save(out / "style-layers.png")
    (out / "style-layers.json").write_text(json.dumps(rows, indent=1))
    print(out / "style-layers.png")


def _grid(tiles, columns: int = 4) -> Image.Image:
    side = max(max(t.shape[-2:]) for _, t in tiles)
    band = 30
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * side, rows * (side + band)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, tensor) in enumerate(tiles):
        x, y = (i % columns) * side, (i // columns) * (side + band)
        sheet.paste(to_pil(tensor), (x, y + band))
        draw.multiline_text((x + 3, y + 1), label, fill="black", spacing=1)
    return sheet


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
