"""Optimisation (Gatys) with and without SWAG's softmax smoothing of the loss network's activations.

For held-out hymenoptera photos (the fast network's validation share, never the comparison's test photos), runs
`stylize`'s optimisation once per feature transform (`none`, `softmax`) and scores every result under BOTH loss
definitions, so the two can be compared on either scale. Writes the results and a labelled grid
(OUT/swag-grid.png: photo, style, Gatys plain, Gatys softmax) to look at.

    PYTHONPATH=src python benchmarks/style_swag.py STYLE.png OUT [--photos 1] [--size 512] [--steps 300]

Prints one JSON line per photo and optimised definition, with process CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from style_recipes import HELD_OUT  # noqa: E402
from style_transfer import draw_grid  # noqa: E402

from pixelforge.tasks.style.gatys import Weights, measure, stylize_by_optimisation  # noqa: E402
from pixelforge.tasks.style.images import read_image, save_image  # noqa: E402
from pixelforge.tasks.style.lossnet import FEATURE_TRANSFORMS, build_loss_network  # noqa: E402
from pixelforge.tasks.style.task import content_paths  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("style")
    parser.add_argument("out")
    parser.add_argument("--data", default="../shared/data/hymenoptera/train")
    parser.add_argument("--photos", type=int, default=1)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--transforms", default=",".join(FEATURE_TRANSFORMS), help="the definitions to optimise")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    nets = {t: build_loss_network("lite0", feature_transform=t) for t in FEATURE_TRANSFORMS}
    style = read_image(args.style, args.size)
    tiles = []
    for path in content_paths(args.data, None)[:HELD_OUT][:args.photos]:
        content = read_image(path, args.size)
        row = [("photo", content), ("style", style)]
        for optimised in args.transforms.split(","):
            net = nets[optimised]
            cpu = time.process_time()
            image = stylize_by_optimisation(net, content, style, steps=args.steps, weights=Weights()).image
            seconds = time.process_time() - cpu
            save_image(image, out / f"{path.stem}-gatys-{optimised}.png")
            scores = {}
            for scored, scoring_net in nets.items():
                losses = measure(scoring_net, image, content, style)
                scores[scored] = {"c": round(losses["content"], 4), "s": round(losses["style"], 5),
                                  "c+10s": round(losses["content"] + 10 * losses["style"], 4)}
            print(json.dumps({"photo": path.name, "optimised": optimised, "cpu_s": round(seconds, 1),
                              "scored": scores}), flush=True)
            row.append((f"gatys, {optimised}: c+10s {scores[optimised]['c+10s']:.3f}", image))
        tiles.append(row)
    print(draw_grid(tiles, out / "swag-grid.png", tile=384))


if __name__ == "__main__":
    main()
