"""Fast-network training recipes compared at equal CPU time, scored where the comparison scores: c + 10 s at 512 px.

Trains the style transformer (tasks/style/transformer.py) with one recipe (crop size, style weight, learning rate)
in a plain loop and, every `--eval-every` steps, prints the content and style losses (Lite0, `stylize`'s weights)
of held-out hymenoptera photos (the 24 the default run validates on; the first 4) stylized at 512 px on their
longer side, with the process CPU seconds so far. The test photos of benchmarks/style_transfer.py (scikit-image's)
are never used here, so choosing a recipe with this script does not tune on them.

    PYTHONPATH=src python benchmarks/style_recipes.py STYLE.png [--crop 256] [--steps 150] [--style-weight 3]
        [--lr 2e-3] [--deep-weight 1] [--feature-transform none] [--width 16] [--blocks 5]
        [--gatys-steps 0] [--data ../shared/data/hymenoptera/train] [--score none,softmax,softmax-deep]
        [--noise 0] [--noise-cells 1,4] [--learn-noise] [--finish-crop 512 --finish-steps 30] [--seed 0]
        [--precision 32|bf16-mixed]

`--deep-weight K` counts the two deepest style layers K times in the training loss (the score is unchanged): the
layers where the fast network falls furthest behind optimisation (docs/style-transfer.md).
`--feature-transform softmax` trains on SWAG's smoothed losses (lossnet.softmax_features). Every evaluation scores
the photos under both loss definitions (`none`: the plain one, `softmax`). `--gatys-steps N` also optimises each
photo with `stylize`'s defaults (N evaluations) under each definition (cached in /tmp/style-recipes-gatys) and
prints the fast / Gatys ratio of c + 10 s under each definition, the issue's 1.5x goal measured on these photos.
`--score none` scores only under the plain definition (cheaper).

`--noise K` gives the transformer K input channels of a fixed noise tile (transformer.noise_tile; `--noise-cells`:
each channel's cell size in px, `--learn-noise`: the tile is trained with the network). `--finish-crop 512
--finish-steps N` trains the last N of `--steps` on crops of that size cut from the photos at that size (the
scale the comparison scores at) instead of `--crop` crops of photos at `--content-size`. `--full-res-blocks N` (a
probe, not in the trainer) adds N residual blocks at full resolution before the transformer's last layer;
`--quarter-noise K` (a probe) adds K channels of the fixed noise tile at quarter resolution, where the residual
blocks work, through a zero-initialised 1x1 convolution added to the encoder's output.
`train_cpu_s` is the CPU time of training alone (evaluations excluded), the figure to compare recipes at.

Run one recipe a process, with OMP_NUM_THREADS=1: CPU seconds then compare across recipes on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from PIL import Image

from pixelforge.tasks.style.gatys import Weights, measure, perceptual_losses, stylize_by_optimisation
from pixelforge.tasks.style.images import read_image, save_image, to_tensor
from pixelforge.tasks.style.lossnet import FEATURE_TRANSFORMS, build_loss_network, gram_matrix
from pixelforge.tasks.style.task import ContentImages, content_paths
from pixelforge.tasks.style.transformer import ResidualBlock, TransformerNet, noise_tile

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
    parser.add_argument("--feature-transform", choices=FEATURE_TRANSFORMS, default="none")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--gatys-steps", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="the network's initial weights and the crops' order")
    parser.add_argument("--score", default=",".join(FEATURE_TRANSFORMS))
    parser.add_argument("--noise", type=int, default=0)
    parser.add_argument("--noise-cells", default="")
    parser.add_argument("--learn-noise", action="store_true")
    parser.add_argument("--full-res-blocks", type=int, default=0)
    parser.add_argument("--quarter-noise", type=int, default=0)
    parser.add_argument("--finish-crop", type=int, default=0)
    parser.add_argument("--finish-steps", type=int, default=0)
    parser.add_argument("--precision", choices=["32", "bf16-mixed"], default="32",
                        help="bf16-mixed: CPU bf16 autocast for the training steps, the loss network's depthwise "
                             "convolutions and the Gram matrices kept in fp32 (scoring stays fp32)")
    parser.add_argument("--save", default=None, help="a folder for the held-out photos stylized at the end")
    return parser.parse_args()


@torch.no_grad()
def score(images, lossnet, photos, style) -> dict:
    """Mean content loss, style loss and c + 10 s of `images` (one per photo) under `lossnet`'s definition."""
    scores = [measure(lossnet, image, photo, style) for image, photo in zip(images, photos)]
    content = sum(s["content"] for s in scores) / len(scores)
    style_loss = sum(s["style"] for s in scores) / len(scores)
    return {"c": round(content, 4), "s": round(style_loss, 5), "c+10s": round(content + 10 * style_loss, 4)}


@torch.no_grad()
def evaluate(net, nets, photos, style, gatys_scores) -> dict:
    net.eval()
    images = [net(photo) for photo in photos]
    net.train()
    result = {}
    for name, lossnet in nets.items():
        result[name] = score(images, lossnet, photos, style)
        if name in gatys_scores:
            result[name]["over_gatys"] = round(result[name]["c+10s"] / gatys_scores[name]["c+10s"], 3)
    return result


class QuarterNoise(torch.nn.Module):
    """The encoder followed by fixed noise at its (quarter) resolution, mixed in by a zero-initialised 1x1 conv."""

    def __init__(self, encoder: torch.nn.Module, channels: int, out_channels: int):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("noise", noise_tile(channels, size=32))  # 32 px at quarter resolution: 128 px in the image
        self.mix = torch.nn.Conv2d(channels, out_channels, 1)
        torch.nn.init.zeros_(self.mix.weight)
        torch.nn.init.zeros_(self.mix.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        height, width, tile = features.shape[-2], features.shape[-1], self.noise.shape[-1]
        noise = self.noise.repeat(1, 1, height // tile + 1, width // tile + 1)[:, :, :height, :width]
        return features + self.mix(noise)


def gatys_references(nets, paths, photos, style, style_path, steps) -> dict:
    """Each definition's optimisation result for every photo, scored under that definition (cached as PNGs)."""
    cache = Path("/tmp/style-recipes-gatys")
    cache.mkdir(exist_ok=True)
    scores = {}
    for name, lossnet in nets.items():
        images = []
        for path, photo in zip(paths, photos):
            file = cache / f"{Path(style_path).stem}-{path.stem}-{name}-{steps}.png"
            if not file.is_file():
                save_image(stylize_by_optimisation(lossnet, photo, style, steps=steps).image, file)
            images.append(to_tensor(Image.open(file)))
        scores[name] = score(images, lossnet, photos, style)
    print(json.dumps({"gatys_steps": steps, "gatys": scores}), flush=True)
    return scores


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    paths = content_paths(args.data, None)  # shuffled with seed 0, as the training task does
    scored = sorted(set(args.score.split(",")) | {args.feature_transform}, key=FEATURE_TRANSFORMS.index)
    nets = {name: build_loss_network("lite0", feature_transform=name) for name in scored}
    lossnet = nets[args.feature_transform]
    style = read_image(args.style, 512)
    with torch.no_grad():
        grams = {k: gram_matrix(v) for k, v in lossnet(style).items() if k in lossnet.style_layers}
    train = ContentImages(paths[HELD_OUT:], args.crop, train=True, scale=args.content_size)
    photos = [read_image(p, 512) for p in paths[:4]]
    photos = [p[..., :p.shape[-2] // 4 * 4, :p.shape[-1] // 4 * 4] for p in photos]
    gatys_scores = (gatys_references(nets, paths[:4], photos, style, args.style, args.gatys_steps)
                    if args.gatys_steps else {})
    finish = (ContentImages(paths[HELD_OUT:], args.finish_crop, train=True, scale=args.finish_crop)
              if args.finish_steps else None)
    cells = tuple(int(c) for c in args.noise_cells.split(",") if c)
    net = TransformerNet(args.width, args.blocks, noise_channels=args.noise, noise_cells=cells,
                         learn_noise=args.learn_noise)
    if args.full_res_blocks:  # before the last 9x9 convolution: capacity where the missing texture is, pixel-scale
        last = len(net.decoder) - 1
        extra = [ResidualBlock(args.width) for _ in range(args.full_res_blocks)]
        net.decoder = torch.nn.Sequential(*net.decoder[:last], *extra, net.decoder[last])
    if args.quarter_noise:
        net.encoder = QuarterNoise(net.encoder, args.quarter_noise, 4 * args.width)
    bf16 = args.precision == "bf16-mixed"
    if bf16:  # a second copy for training, so the scoring network stays exactly the fp32 one
        from pixelforge.engine.exact_speedups import keep_depthwise_fp32

        lossnet = build_loss_network("lite0", feature_transform=args.feature_transform)
        keep_depthwise_fp32(lossnet)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    # --deep-weight K: the trainer's --style-layer-weights 1,1,1,K,K (the score counts every layer alike)
    layer_weights = (1.0,) * (len(lossnet.style_layers) - 2) + (float(args.deep_weight),) * 2
    weights, order, step = Weights(1.0, args.style_weight, 0.01, layer_weights), random.Random(args.seed), 0
    started, evaluating = time.process_time(), 0.0
    while step < args.steps:
        data = finish if finish is not None and step >= args.steps - args.finish_steps else train
        indices = list(range(len(data)))
        order.shuffle(indices)
        for i in range(0, len(indices) - args.batch + 1, args.batch):
            if data is train and finish is not None and step >= args.steps - args.finish_steps:
                break  # the finishing steps start: switch to the large crops
            batch = torch.stack([data[j] for j in indices[i:i + args.batch]])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                with torch.no_grad():
                    targets = {k: v for k, v in lossnet(batch).items() if k in lossnet.content_layers}
                loss = perceptual_losses(lossnet, net(batch), targets, grams, weights)["total"].float()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % args.eval_every == 0 or step == args.steps:
                before = time.process_time()
                scores = evaluate(net, nets, photos, style, gatys_scores)
                print(json.dumps({"crop": args.crop, "style_weight": args.style_weight, "lr": args.lr,
                                  "deep_weight": args.deep_weight, "feature_transform": args.feature_transform,
                                  "width": args.width, "blocks": args.blocks, "noise": args.noise,
                                  "noise_cells": args.noise_cells, "learn_noise": args.learn_noise,
                                  "full_res_blocks": args.full_res_blocks, "quarter_noise": args.quarter_noise,
                                  "finish": [args.finish_crop, args.finish_steps], "seed": args.seed,
                                  "precision": args.precision, "step": step,
                                  "cpu_s": round(before - started, 1),
                                  "train_cpu_s": round(before - started - evaluating, 1), **scores}), flush=True)
                evaluating += time.process_time() - before
            if step == args.steps:
                break
    if args.save:
        net.eval()
        with torch.no_grad():
            for path, photo in zip(paths[:4], photos):
                save_image(net(photo), Path(args.save) / f"{path.stem}-fast-{args.feature_transform}.png")


if __name__ == "__main__":
    main()
