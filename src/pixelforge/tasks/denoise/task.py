"""Denoising as an engine task: random noisy crops in, the clean crops as targets, mean squared error, PSNR.

The loss is the mean squared error on [0, 1] images, which is what PSNR measures (PSNR = -10 log10 MSE), so the
validation PSNR that picks best.ckpt is the quantity the loss optimises, measured on fixed centre crops of the
validation images (evaluate.py then scores whole images).
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn import functional as F

from pixelforge.errors import PixelforgeError

log = logging.getLogger("pixelforge")


class DenoisingStep:
    monitor = "val_psnr"
    monitor_mode = "max"

    def training_step(self, model: nn.Module, batch) -> dict:
        noisy, clean = batch
        loss = F.mse_loss(model(noisy), clean)
        return {"loss": loss, "count": noisy.shape[0]}

    @torch.no_grad()
    def validate(self, model: nn.Module, batches, fabric) -> dict:
        # sums of (squared error per image, log10 MSE per image, images), summed over processes at the end
        sums = torch.zeros(3, dtype=torch.float64, device=fabric.device)
        for noisy, clean in batches:
            mse = ((model(noisy).clamp(0, 1) - clean) ** 2).flatten(1).mean(1).double()
            sums += torch.stack([mse.sum(), torch.log10(mse.clamp_min(1e-12)).sum(),
                                 torch.tensor(float(len(mse)), dtype=torch.float64, device=mse.device)])
        sums = fabric.all_reduce(sums, reduce_op="sum").cpu()
        images = max(float(sums[2]), 1.0)
        return {"val_loss": float(sums[0]) / images, "val_psnr": -10.0 * float(sums[1]) / images}


def prepare_data(cfg):
    """The run's images with their splits (no classes: the run's classes.json is empty)."""
    from pixelforge.tasks.denoise.data import read_denoise_data, split_source

    source = split_source(read_denoise_data(cfg.data), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    if not source.split("train") or not source.split("val"):
        raise PixelforgeError(f"{source.origin}: need images in both train and val splits (found "
                              f"{len(source.split('train'))} train, {len(source.split('val'))} val); add images")
    return source, []


def build_setup(cfg, source, classes, fabric, progress):
    from pixelforge.data.noise import parse_noise
    from pixelforge.engine.setup import TaskSetup
    from pixelforge.tasks.denoise.data import VAL_CROP, CentreCrops, EpochIndices, RandomCrops, preload
    from pixelforge.tasks.denoise.models import build_denoiser

    model = build_denoiser(cfg.model, cfg.channels, depth=cfg.depth, features=cfg.features, shuffle=cfg.shuffle,
                           encoder=cfg.encoder, weights=cfg.weights)
    noise = parse_noise(cfg.noise)
    for faint in noise.below_one_level():
        log.warning("--noise %s: SIGMA is on the 0-255 scale, so 8-bit images change by less than one level and "
                    "mostly round back to the clean image; for %g of the full range use gaussian:%g",
                    faint, faint.level, round(faint.level * 255, 3))
    train_items, val_items = source.split("train"), source.split("val")
    advance, close = progress.counter("decoding images", len(train_items) + len(val_items))
    train_loaded, bad_train = preload(train_items, cfg.channels, advance)
    val_loaded, bad_val = preload(val_items, cfg.channels, advance)
    close()
    if not train_loaded or not val_loaded:
        name, bad = ("train", bad_train) if not train_loaded else ("val", bad_val)
        raise PixelforgeError(f"{source.origin}: no readable images in the {name} split ({bad[0]})")
    train_set = RandomCrops(train_loaded, noise, cfg.img_size, cfg.crops_per_image, cfg.seed)
    val_set = CentreCrops(val_loaded, noise, max(cfg.img_size, VAL_CROP), cfg.seed)
    params = sum(p.numel() for p in model.parameters())
    progress.info(f"denoiser {cfg.model} ({params / 1e6:.2f} M parameters), {cfg.channels} channel(s), noise "
                  f"{'paired noisy/ + clean/ images' if source.paired else noise.spec}, {cfg.img_size} px crops")
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.to(fabric.device)
    return TaskSetup(
        task=DenoisingStep(), model=model, trained=model, train_data=train_set, val_data=val_set,
        # No weight decay: it pulls the residual toward zero noise, i.e. toward returning the noisy input.
        param_groups=lambda lr: [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr,
                                  "weight_decay": 0.0}],
        n_train=len(train_loaded), n_val=len(val_loaded), workers=0 if cfg.workers is None else cfg.workers,
        train_sampler=EpochIndices(len(train_set), cfg.seed, fabric.global_rank, fabric.world_size),
        channels_last=cfg.channels_last,
        extra_checkpoint={"task": "denoise", "denoiser": cfg.model, "channels": cfg.channels, "noise": noise.spec,
                          "paired": source.paired, "depth": cfg.depth, "features": cfg.features, "shuffle": cfg.shuffle,
                          "encoder": cfg.encoder},
        unreadable=bad_train + bad_val,
    )
