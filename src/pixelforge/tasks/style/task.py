"""Fast style transfer as an engine task (Johnson et al. 2016): a transformer network trained with the perceptual
loss of a frozen loss network, on a folder of content photos and one style image.

Each training image is a random square crop resized to `img_size`; validation uses centre crops of a held-out
share. The monitor is the validation perceptual loss (lower is better), on the same loss network and weights
as training. Only the transformer is in the checkpoint; the loss network is rebuilt from its name.
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from pixelforge.errors import PixelforgeError
from pixelforge.tasks.style.gatys import Weights, perceptual_losses
from pixelforge.tasks.style.lossnet import LossNetwork, gram_matrix

log = logging.getLogger("pixelforge")


class ContentImages(Dataset):
    """Content photos as [3, S, S] tensors in [0, 1]: random (train) or centre (val) crops of `size`.

    Photos are decoded once with their shorter side at `scale` px and kept in memory (hymenoptera's 244 photos take
    ~140 MB at 384 px). The crops are cut, not resized: the network learns to paint at the scale the photos have
    when it is applied (a 512 px photo), not at a shrunken one; painting learnt on whole photos shrunk to 128 px
    came out 3-4x too fine at 512 px and scored badly there.
    """

    def __init__(self, paths: list[Path], size: int, train: bool, scale: int | None = None):
        from torchvision.transforms import v2

        from pixelforge.data.images import load_rgb

        scale = max(size, scale or size)
        self.images, self.unreadable = [], []
        for path in paths:
            try:
                image = load_rgb(path, min_side=size)
            except PixelforgeError:
                self.unreadable.append(str(path))
                continue
            self.images.append(v2.functional.pil_to_tensor(v2.functional.resize(image, scale)))
        crop = v2.RandomCrop(size) if train else v2.CenterCrop(size)
        self.transform = v2.Compose([crop, *([v2.RandomHorizontalFlip()] if train else []),
                                     v2.ToDtype(torch.float32, scale=True)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.images[index])


class StyleStep:
    """The engine's step object: perceptual loss of the transformer's output."""

    monitor, monitor_mode = "val_loss", "min"

    def __init__(self, lossnet: LossNetwork, style_grams: dict, weights: Weights):
        self.lossnet, self.style_grams, self.weights = lossnet, style_grams, weights

    def _losses(self, model, images, weights: Weights):
        lossnet = self.lossnet.to(images.device)
        with torch.no_grad():
            features = lossnet(images)
            content_targets = {k: features[k] for k in lossnet.content_layers}
        grams = {k: v.to(images.device) for k, v in self.style_grams.items()}
        return perceptual_losses(lossnet, model(images), content_targets, grams, weights)

    def training_step(self, model, batch) -> dict:
        losses = self._losses(model, batch, self.weights)
        return {"loss": losses["total"], "count": len(batch), "content": losses["content"].detach(),
                "style": losses["style"].detach()}

    @torch.no_grad()
    def validate(self, model, batches, fabric) -> dict:
        sums = torch.zeros(4, dtype=torch.float64, device=fabric.device)  # total, content, style (x images), images
        # Validation counts every style layer alike (as `stylize` scores), whatever the training's layer weights,
        # so the monitor of runs with different --style-layer-weights compares.
        weights = replace(self.weights, style_layers=None)
        # Each image on its own, as `stylize` scores one: the content loss is relative to the batch's content
        # energy, so a batch's figure depended on which images shared it (the batch size, and under DDP the split
        # between the processes).
        for batch in batches:
            for images in batch.split(1):
                losses = self._losses(model, images, weights)
                sums += torch.tensor([float(losses["total"]), float(losses["content"]), float(losses["style"]), 1.0],
                                     dtype=torch.float64, device=fabric.device)
        sums = fabric.all_reduce(sums, reduce_op="sum").cpu()
        count = max(float(sums[3]), 1.0)
        return {"val_loss": float(sums[0]) / count, "val_content": float(sums[1]) / count,
                "val_style": float(sums[2]) / count}


def content_paths(data: str, max_images: int | None, seed: int = 0) -> list[Path]:
    """The content photos in a seeded order: the first ones validate (`prepare_data`), the rest train."""
    from pixelforge.data.images import list_images

    folder = Path(data)
    if not folder.is_dir():
        raise PixelforgeError(f"{data}: --data must be a folder of content photos (any layout, searched recursively)")
    paths = list_images(folder)
    if len(paths) < 2:
        raise PixelforgeError(f"{data}: found {len(paths)} image(s); fast style training needs at least 2 photos")
    random.Random(seed).shuffle(paths)
    return paths[:max_images] if max_images else paths


def split_content(data: str, max_images: int | None, val_fraction: float, seed: int) -> dict[str, list[Path]]:
    """Training and validation photos. A folder with `train/`, `val/` (`valid/`, `validation/`) and `test/` folders
    keeps them, as every task does: training reads train/ (and photos outside the split folders), validation val/
    (without one, a seeded `val_fraction` of the training photos), and test/ is never read. Any other layout is
    shuffled with `seed` and its first `val_fraction` validate: the split the documented runs were measured on."""
    from pixelforge.data.sources import split_folder

    paths = content_paths(data, None, seed)
    given = {path: split_folder(path, Path(data)) for path in paths}
    if not any(given.values()):
        paths = paths[:max_images] if max_images else paths
        n_val = max(1, round(len(paths) * val_fraction))
        return {"train": paths[n_val:], "val": paths[:n_val]}
    pool = [path for path in paths if given[path] in ("train", None)]
    val = [path for path in paths if given[path] == "val"]
    if not val:
        n_val = max(1, round(len(pool) * val_fraction)) if len(pool) > 1 else 0
        pool, val = pool[n_val:], pool[:n_val]
    if max_images:
        pool = pool[:max(1, max_images - len(val))]
    if not pool or not val:
        raise PixelforgeError(f"{data}: its split folders give {len(pool)} training and {len(val)} validation "
                              f"photo(s); style training reads train/ and validates on val/: add photos to train/ "
                              f"(or use no split folders, for a seeded split by --val-fraction)")
    n_test = sum(given[path] == "test" for path in paths)
    if n_test:
        log.info("%s: %d photo(s) in its test/ folder are not used for training or validation", data, n_test)
    return {"train": pool, "val": val}


def prepare_data(cfg) -> tuple[dict, list]:
    from pixelforge.tasks.style.images import read_image

    if not cfg.style:
        raise PixelforgeError("--task style needs --style IMAGE: the picture whose style the network learns")
    if not Path(cfg.style).exists():
        from pixelforge.deploy.runtime.arbitrary import builtin_weights

        if builtin_weights(cfg.style) is not None:  # "7: image not found" did not say why a built-in style fails here
            raise PixelforgeError(f"--style {cfg.style}: a built-in style of `pixelforge stylize --method arbitrary`, "
                                  "which needs no training; a fast network learns from a style image: give its path")
    read_image(cfg.style)  # a missing or broken style image fails here, before any run folder exists
    check_layer_weights(cfg.style_layer_weights, cfg.loss_net)
    return content_split(cfg), []


def content_split(cfg) -> dict[str, list[Path]]:
    """A run's training and validation photos, as training split them (--seed splits, as every task's). The
    report and export read them without the style image: once trained, a run no longer needs its style file."""
    return split_content(cfg.data, cfg.max_images, cfg.val_fraction, cfg.seed)


def check_layer_weights(layer_weights: list[float] | None, loss_net: str) -> None:
    """--style-layer-weights: one weight >= 0 per style layer of the loss network, not all zero."""
    from pixelforge.tasks.style.lossnet import LITE_STYLE_LAYERS, VGG_STYLE_LAYERS

    layers = VGG_STYLE_LAYERS if loss_net == "vgg19" else LITE_STYLE_LAYERS
    if layer_weights is not None and (len(layer_weights) != len(layers) or min(layer_weights) < 0
                                      or sum(layer_weights) <= 0):
        raise PixelforgeError(f"--style-layer-weights {','.join(map(str, layer_weights))}: give one weight >= 0 per "
                              f"style layer ({len(layers)}: {', '.join(layers)}), not all 0")


def build_lossnet(cfg) -> LossNetwork:
    from pixelforge.tasks.style.lossnet import build_loss_network

    return build_loss_network(cfg.loss_net, cfg.loss_net_weights, feature_transform=cfg.feature_transform)


def style_targets(cfg, lossnet: LossNetwork) -> dict:
    from pixelforge.tasks.style.images import read_image

    style = read_image(cfg.style, cfg.style_size or 2 * cfg.img_size)
    with torch.no_grad():
        features = lossnet(style)
    return {k: gram_matrix(features[k]) for k in lossnet.style_layers}


def build_setup(cfg, source: dict, classes, fabric, progress):
    from pixelforge.engine.setup import TaskSetup
    from pixelforge.tasks.style.transformer import TransformerNet

    torch.manual_seed(cfg.seed)
    model = TransformerNet(cfg.width, cfg.residual_blocks, noise_channels=cfg.noise_channels).to(fabric.device)
    lossnet = build_lossnet(cfg)
    if cfg.precision == "bf16-mixed" and fabric.device.type == "cpu":
        from pixelforge.engine.exact_speedups import keep_depthwise_fp32

        # Lite0's depthwise convolutions in fp32, as classification does: oneDNN's bf16 depthwise backward is slow
        # (engine/exact_speedups.py). The Gram matrices are fp32 in any case (lossnet.gram_matrix).
        keep_depthwise_fp32(lossnet)
    progress.info(f"style transfer: transformer width {cfg.width}, {cfg.residual_blocks} residual blocks, "
                  f"{cfg.noise_channels} noise channels "
                  f"({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters); loss network "
                  f"{lossnet.name} (feature transform {lossnet.feature_transform}), content "
                  f"{list(lossnet.content_layers)}, style {list(lossnet.style_layers)}")
    train_set = ContentImages(source["train"], cfg.img_size, train=True, scale=cfg.content_size)
    val_set = ContentImages(source["val"], cfg.img_size, train=False, scale=cfg.content_size)
    for name, images in (("training", train_set), ("validation", val_set)):
        if not len(images):  # else training runs on nothing and the report fails on an empty batch
            raise PixelforgeError(f"{cfg.data}: none of the {name} photos could be decoded "
                                  f"({', '.join(images.unreadable[:3])}); remove the broken files or add photos")
    layer_weights = cfg.style_layer_weights
    weights = Weights(cfg.content_weight, cfg.style_weight, cfg.tv_weight,
                      tuple(layer_weights) if layer_weights is not None else None)
    return TaskSetup(
        task=StyleStep(lossnet, style_targets(cfg, lossnet), weights), model=model, trained=model,
        train_data=train_set, val_data=val_set, n_train=len(train_set), n_val=len(val_set),
        workers=0 if cfg.workers is None else cfg.workers,  # none by default: the photos are in memory already
        param_groups=lambda lr: [{"params": list(model.parameters()), "lr": lr, "weight_decay": 0.0}],
        extra_checkpoint={"task": "style", "width": cfg.width, "residual_blocks": cfg.residual_blocks,
                          "noise_channels": cfg.noise_channels,
                          "loss_net": lossnet.name, "feature_transform": lossnet.feature_transform,
                          "content_layers": list(lossnet.content_layers),
                          "style_layers": list(lossnet.style_layers)},
        unreadable=train_set.unreadable + val_set.unreadable,
    )
