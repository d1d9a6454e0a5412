"""Fast-network training recipes compared at equal CPU time, scored where the comparison scores: c + 10 s at 512 px.

Trains the style transformer (tasks/style/transformer.py) with one recipe (crop size, style weight, learning rate)
in a plain loop and, every `--eval-every` steps, prints the content and style losses (Lite0, `stylize`'s weights)
of held-out hymenoptera photos (the 24 the default run validates on; the first 4) stylized at 512 px on their
longer side, with the process CPU seconds so far. The test photos of benchmarks/style_transfer.py (scikit-image's)
are never used here, so choosing a recipe with this script does not tune on them.

    PYTHONPATH=src python benchmarks/style_recipes.py STYLE.png [--crop 256] [--steps 150] [--style-weight 3]
        [--lr 2e-3] [--deep-weight 1] [--data ../shared/data/hymenoptera/train]

`--deep-weight K` counts the two deepest style layers K times in the training loss (the score is unchanged): the
layers where the fast network falls furthest behind optimisation (docs/style-transfer.md).

Run one recipe a process, with OMP_NUM_THREADS=1: CPU seconds then compare across recipes on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from pixelforge.tasks.style.gatys import Weights, measure, perceptual_losses
from pixelforge.tasks.style.images import read_image
from pixelforge.tasks.style.lossnet import build_loss_network, gram_matrix
from pixelforge.tasks.style.task import ContentImages, content_paths
from pixelforge.tasks.style.transformer import TransformerNet

HELD_OUT = 24  # the default run's validation share of hymenoptera/train (val_fraction 0.1 of 245 photos)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("style")
    parser.add_argument("--data", default="../shared/data/hymenoptera/train")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--content-size", type=int, default=384)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--style-weight", type=float, default=3.0)
    parser.add_argument("--deep-weight", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=50)
    return parser.parse_args()


@torch.no_grad()
def evaluate(net, lossnet, photos, style) -> dict:
    net.eval()
    scores = [measure(lossnet, net(photo), photo, style) for photo in photos]
    net.train()
    content = sum(s["content"] for s in scores) / len(scores)
    style_loss = sum(s["style"] for s in scores) / len(scores)
    return {"c": round(content, 4), "s": round(style_loss, 5), "c+10s": round(content + 10 * style_loss, 4)}


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    paths = content_paths(args.data, None)  # shuffled with seed 0, as the training task does
    lossnet = build_loss_network("lite0")
    deep = lossnet.style_layers[-2:] * (args.deep_weight - 1)  # style_loss averages over the listed layers
    train_lossnet = build_loss_network("lite0", style_layers=lossnet.style_layers + deep)
    style = read_image(args.style, 512)
    with torch.no_grad():
        grams = {k: gram_matrix(v) for k, v in lossnet(style).items() if k in lossnet.style_layers}
    train = ContentImages(paths[HELD_OUT:], args.crop, train=True, scale=args.content_size)
    photos = [read_image(p, 512) for p in paths[:4]]
    photos = [p[..., :p.shape[-2] // 4 * 4, :p.shape[-1] // 4 * 4] for p in photos]
    net = TransformerNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    weights, order, step = Weights(1.0, args.style_weight, 0.01), random.Random(0), 0
    started = time.process_time()
    while step < args.steps:
        indices = list(range(len(train)))
        order.shuffle(indices)
        for i in range(0, len(indices) - args.batch + 1, args.batch):
            batch = torch.stack([train[j] for j in indices[i:i + args.batch]])
            with torch.no_grad():
                targets = {k: v for k, v in lossnet(batch).items() if k in lossnet.content_layers}
            loss = perceptual_losses(train_lossnet, net(batch), targets, grams, weights)["total"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % args.eval_every == 0 or step == args.steps:
                print(json.dumps({"crop": args.crop, "style_weight": args.style_weight, "lr": args.lr,
                                  "deep_weight": args.deep_weight, "step": step,
                                  "cpu_s": round(time.process_time() - started, 1),
                                  **evaluate(net, lossnet, photos, style)}), flush=True)
            if step == args.steps:
                break


if __name__ == "__main__":
    main()
