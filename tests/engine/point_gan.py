"""A tiny GAN on 2-D points: the engine's test task for manual optimization, named optimizers, task state (an EMA
generator), a "lower is better" monitor and batches that are plain tensors (no `x, y`)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from pixelforge.engine.setup import TaskSetup

LATENT = 4


def ring(n: int, seed: int) -> torch.Tensor:
    """Points around 8 modes on the unit circle."""
    generator = torch.Generator().manual_seed(seed)
    angles = torch.randint(0, 8, (n,), generator=generator) * (2 * math.pi / 8)
    centres = torch.stack([angles.cos(), angles.sin()], 1)
    return centres + 0.05 * torch.randn(n, 2, generator=generator)


class PointGANModel(nn.Module):
    """Both networks in one module, called through its forward, so Fabric's wrapper (and DDP) sees every call."""

    def __init__(self):
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(LATENT, 32), nn.ReLU(), nn.Linear(32, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))

    def forward(self, mode: str, x: torch.Tensor) -> torch.Tensor:
        return self.generator(x) if mode == "generate" else self.discriminator(x).squeeze(1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 32) -> float:
    """W1 between two equal-sized point sets, averaged over fixed random directions."""
    directions = F.normalize(torch.randn(2, projections, generator=torch.Generator().manual_seed(1)), dim=0)
    pa, pb = (a @ directions).sort(0).values, (b @ directions).sort(0).values
    return float((pa - pb).abs().mean())


class PointGAN:
    monitor = "val_wd"
    monitor_mode = "min"
    automatic_optimization = False

    def __init__(self, model: PointGANModel, ema_decay: float = 0.9):
        self.model, self.ema_decay = model, ema_decay
        self.ema = copy.deepcopy(model.generator).requires_grad_(False)

    def configure_optimizers(self, lr: float, total_steps: int, warmup_steps: int) -> dict:
        generator = torch.optim.Adam(self.model.generator.parameters(), lr=lr, betas=(0.5, 0.9))
        discriminator = torch.optim.Adam(self.model.discriminator.parameters(), lr=lr, betas=(0.5, 0.9))
        decay = torch.optim.lr_scheduler.StepLR(discriminator, step_size=5, gamma=0.9)
        return {"generator": (generator, None), "discriminator": (discriminator, decay)}

    def training_step(self, model, batch: torch.Tensor, ctx) -> dict:
        real = batch
        fake = model("generate", torch.randn(len(real), LATENT, device=real.device))
        d_opt, g_opt = ctx.optimizers["discriminator"], ctx.optimizers["generator"]
        d_real = model("discriminate", real)
        d_loss = F.softplus(-d_real).mean() + F.softplus(model("discriminate", fake.detach())).mean()
        d_opt.zero_grad(set_to_none=True)
        ctx.backward(d_loss)
        ctx.clip("discriminator", 5.0)
        d_opt.step()
        ctx.schedulers["discriminator"].step()
        g_loss = F.softplus(-model("discriminate", fake)).mean()
        g_opt.zero_grad(set_to_none=True)
        ctx.backward(g_loss)
        g_opt.step()
        with torch.no_grad():
            for averaged, current in zip(self.ema.parameters(), self.model.generator.parameters()):
                averaged.lerp_(current, 1 - self.ema_decay)
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach(), "d_real": torch.sigmoid(d_real).mean().detach(),
                "one": 1, "count": len(real)}

    @torch.no_grad()
    def validate(self, model, batches, fabric) -> dict:
        real = torch.cat(list(batches))
        noise = torch.randn(len(real), LATENT, generator=torch.Generator().manual_seed(2))
        return {"val_wd": sliced_wasserstein(real, self.ema(noise.to(real.device)))}

    def state_dict(self) -> dict:
        return {"ema": self.ema.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state["ema"])


class Jittered(Dataset):
    """The points moved by fresh noise at every read: an augmentation, drawn from the RNG of the process reading."""

    def __init__(self, points: list):
        self.points = points

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.points[index] + 0.02 * torch.randn(2)


def build_point_gan(fabric, progress, n_train: int = 256, n_val: int = 64, workers: int = 0) -> TaskSetup:
    """`workers` > 0: the training points are jittered, in that many DataLoader workers."""
    model = PointGANModel().to(fabric.device)
    train, val = list(ring(n_train, seed=10)), list(ring(n_val, seed=11))
    return TaskSetup(task=PointGAN(model), model=model, trained=model, train_data=Jittered(train) if workers else train,
                     val_data=val, n_train=n_train, n_val=n_val, workers=workers)
