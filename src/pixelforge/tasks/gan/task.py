"""The GAN as an engine task: manual optimization with two named optimizers (discriminator, generator), the EMA
generator inside the model (so checkpoints and resume carry it), a per-epoch FID against cached real features as
the `min` monitor, and a hook that draws the fixed-noise grid after each validation.

Each batch takes one discriminator step; the generator steps after every `d_steps`-th one (counted by the loop's
global step, so a resumed run keeps the rhythm).
"""

from __future__ import annotations

import logging

import torch
from torch.nn import functional as F

import pixelforge.tasks.gan.losses as losses
from pixelforge.tasks.gan.augment import diff_augment
from pixelforge.tasks.gan.models import GANModel

log = logging.getLogger("pixelforge")
GRID_SEED = 1234  # the fixed noise of the per-epoch grids
VAL_SEED = 4321  # the noise of the per-epoch FID samples
COLLAPSE_SHARE = 0.5  # diversity below this share of the real images' is called a mode collapse


def balanced_labels(n: int, num_classes: int) -> torch.Tensor | None:
    """0, 1, ..., K-1, 0, 1, ...: every class equally often (None for an unconditional model)."""
    return torch.arange(n) % num_classes if num_classes else None


@torch.no_grad()
def generate(generator, n: int, latent_dim: int, labels: torch.Tensor | None, seed: int, batch_size: int = 128,
             truncation: float | None = None) -> torch.Tensor:
    """`n` images in [-1, 1] from `generator` (eval mode), noise from torch.Generator(seed): the same seed, the
    same images."""
    from pixelforge.tasks.gan.models import sample_noise

    z = sample_noise(n, latent_dim, torch.Generator().manual_seed(seed), truncation)
    device = next(generator.parameters()).device
    chunks = []
    for start in range(0, n, batch_size):
        y = labels[start:start + batch_size].to(device) if labels is not None else None
        chunks.append(generator(z[start:start + batch_size].to(device), y).float().cpu())
    return torch.cat(chunks)


class GANStep:
    monitor_mode = "min"
    automatic_optimization = False

    def __init__(self, model: GANModel, cfg, num_classes: int, extractor, real_features: torch.Tensor,
                 real_diversity: float):
        self.model, self.cfg = model, cfg
        self.num_classes = num_classes if cfg.conditional else 0
        self.extractor, self.real_features, self.real_diversity = extractor, real_features, real_diversity
        self.monitor = f"val_fid_{extractor.name}"
        # The auxiliary classifier sees the images without DiffAugment: with half of a 32 px digit cut out, it
        # did not learn the classes within 80 steps (cross-entropy stayed at ln 10); unaugmented, it did (0.3).
        self.aux = bool(self.num_classes) and cfg.aux_weight > 0
        self._loss_g = torch.zeros(())

    def configure_optimizers(self, lr: float, total_steps: int, warmup_steps: int) -> dict:
        # Adam with beta1 0.5 (DCGAN); the discriminator may learn faster (two time-scale update rule).
        betas = (0.0, 0.9) if self.cfg.loss == "wgan-gp" else (0.5, 0.999)
        g = torch.optim.Adam(self.model.generator.parameters(), lr=lr, betas=betas)
        d = torch.optim.Adam(self.model.discriminator.parameters(), lr=self.cfg.lr_d or lr, betas=betas)
        return {"generator": (g, None), "discriminator": (d, None)}

    def _labels(self, n: int, device) -> torch.Tensor | None:
        return torch.randint(0, self.num_classes, (n,), device=device) if self.num_classes else None

    def _discriminate(self, discriminator, augmented: list, plain, labels):
        """The discriminator's scores of the `augmented` batches and, with the auxiliary classifier, its class logits
        for the `plain` (unaugmented) images, from ONE call on all of them: a small network on a CPU spends more on
        each call than on its arithmetic (and spectral norm does one power iteration per call)."""
        parts = augmented + ([plain] if self.aux else [])
        y = torch.cat([labels] * len(parts)) if labels is not None else None
        scores, logits = discriminator(torch.cat(parts), y, with_logits=True)
        m = len(plain) * len(augmented)
        return scores[:m], logits[m:] if self.aux else None

    def training_step(self, model, batch, ctx) -> dict:
        """`model`: {"generator", "discriminator"}, each Fabric-wrapped on its own (under DDP its own wrapper, whose
        gradients the backward of its own loss syncs). The penalties call the bare discriminator: their gradients
        reach the same parameters within the discriminator's backward."""
        real, labels = batch
        generator, discriminator = model["generator"], model["discriminator"]
        labels = labels if self.num_classes else None
        n, latent, kind = len(real), self.cfg.latent_dim, self.cfg.loss
        d_opt, g_opt = ctx.optimizers["discriminator"], ctx.optimizers["generator"]
        critic = self.model.discriminator

        with torch.no_grad():
            fake = generator(torch.randn(n, latent, device=real.device), labels)
        policy = self.cfg.diffaugment
        augmented = [diff_augment(real, policy), diff_augment(fake, policy)]
        scores, logits = self._discriminate(discriminator, augmented, real, labels)
        d_real, d_fake = scores[:n], scores[n:2 * n]
        loss_d = losses.discriminator_loss(kind, d_real, d_fake)
        aux_d = torch.zeros((), device=real.device)
        if self.aux:
            aux_d = F.cross_entropy(logits, labels)
            loss_d = loss_d + self.cfg.aux_weight * aux_d
        penalty = torch.zeros((), device=real.device)
        if kind == "wgan-gp":
            penalty = self.cfg.gp * losses.gradient_penalty(critic, real, fake, labels)
        if self.cfg.r1 > 0:
            penalty = penalty + self.cfg.r1 / 2 * losses.r1_penalty(critic, real, labels)
        d_opt.zero_grad(set_to_none=True)
        ctx.backward(loss_d + penalty)
        d_opt.step()

        if ctx.global_step % self.cfg.d_steps == 0:
            y = self._labels(n, real.device)
            ms = getattr(self.cfg, "mode_seeking", 0.0)
            if ms and y is not None:  # pairs of samples of the same class: the batch's halves share labels
                y = torch.cat([y[:n // 2], y[:n - n // 2]])
            z = torch.randn(n, latent, device=real.device)
            fake = generator(z, y)
            scores, logits = self._discriminate(discriminator, [diff_augment(fake, policy)], fake, y)
            loss_g = losses.generator_loss(kind, scores)
            if ms:
                loss_g = loss_g + ms * losses.mode_seeking(fake, z)
            if self.aux:
                loss_g = loss_g + self.cfg.aux_weight * F.cross_entropy(logits, y)
            g_opt.zero_grad(set_to_none=True)
            ctx.backward(loss_g)
            g_opt.step()
            # EMA warm-up: early on the average would mostly hold the random initialisation.
            step = ctx.global_step
            self.model.update_ema(min(self.cfg.ema_decay, (1 + step) / (10 + step)))
            self._loss_g = loss_g.detach()
        return {"loss_d": loss_d.detach(), "loss_g": self._loss_g, "aux_d": aux_d.detach(), "penalty": penalty.detach(),
                "d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach(), "count": n}

    @torch.no_grad()
    def validate(self, model, batches, fabric) -> dict:
        """FID/KID of `fid_n` EMA samples (balanced classes, fixed noise) against the cached real features; the
        real batches are not read (their features were computed once, in `build_setup`).

        Under DDP rank 0 alone generates and scores them, and the others wait for its figures (the broadcast):
        every process must see the same monitor to agree on best.ckpt and on an early stop. Not sharded across
        processes and gathered: FID's covariance and KID's seeded subsets need every feature row in one place
        anyway, `fid_n` samples are a small part of an epoch, and rank 0 alone generates them in the very batches
        one process does, so the figures are one process's to the bit (the engine gave every process rank 0's
        batch-norm statistics first, engine/loop.py `share_buffers`; rank 0's model is the one checkpointed).
        """
        row = None
        if fabric.global_rank == 0:
            from pixelforge.tasks.gan.data import to_uint8
            from pixelforge.tasks.gan.fid import extract, fid_kid, mean_pairwise_distance

            n = len(self.real_features)
            fake = generate(self.model.ema.eval(), n, self.cfg.latent_dim, balanced_labels(n, self.num_classes),
                            VAL_SEED)
            features = extract(self.extractor, to_uint8(fake))
            scores = fid_kid(self.real_features, features)
            name = self.extractor.name
            diversity = mean_pairwise_distance(features)
            row = {f"val_fid_{name}": float(scores["fid"]), f"val_kid_{name}": float(scores["kid"]),
                   "val_diversity": float(diversity / max(self.real_diversity, 1e-12))}
        return fabric.broadcast(row, src=0) if fabric.world_size > 1 else row

    def state_dict(self) -> dict:
        return {"loss_g": float(self._loss_g)}

    def load_state_dict(self, state: dict) -> None:
        self._loss_g = torch.tensor(state.get("loss_g", 0.0))


class EpochGrid:
    """After each validation: RUN/samples/epoch_NNN.png, the EMA generator on fixed noise (a row per class for a
    conditional model), and a mode-collapse warning when the samples' diversity drops."""

    def __init__(self, step: GANStep, rows: int = 8, warn=log.warning):
        self.step, self.rows, self.warn = step, rows, warn

    def on_validation_end(self, ctx, row: dict) -> None:
        if ctx.fabric.global_rank == 0:
            write_grid(self.step, ctx.run_dir / "samples" / f"epoch_{row['epoch']:03d}.png", self.rows)
        share = row.get("val_diversity")
        if share is not None and share < COLLAPSE_SHARE and ctx.fabric.global_rank == 0:  # once, not per process
            self.warn(f"possible mode collapse at epoch {row['epoch']}: the samples' feature diversity is "
                      f"{share:.0%} of the real images'")


def write_grid(step: GANStep, path, rows: int = 8) -> None:
    from pixelforge.tasks.gan.images import save_grid

    k = step.num_classes
    columns = 10 if not k else max(8, min(k, 10))
    per_row = rows if not k else min(k, 10)
    labels = torch.arange(per_row).repeat_interleave(columns) if k else None
    n = per_row * columns if k else rows * columns
    images = generate(step.model.ema.eval(), n, step.cfg.latent_dim, labels, GRID_SEED)
    save_grid(images, path, columns)
