"""The GAN losses (`--loss`): hinge (Lim & Ye 2017; SN-GAN), non-saturating (Goodfellow et al. 2014) and WGAN-GP
(Gulrajani et al. 2017), plus the R1 penalty on real images (Mescheder et al. 2018)."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def discriminator_loss(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    if kind == "ns":
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    return d_fake.mean() - d_real.mean()  # wgan-gp: the critic's Wasserstein estimate (GP added by the caller)


def generator_loss(kind: str, d_fake: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return F.softplus(-d_fake).mean()
    return -d_fake.mean()  # hinge and wgan-gp


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, labels) -> torch.Tensor:
    """WGAN-GP: (||grad D(x_hat)|| - 1)^2 on random interpolates of real and generated images."""
    alpha = torch.rand(len(real), 1, 1, 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed, labels).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(critic, real: torch.Tensor, labels) -> torch.Tensor:
    """R1: the squared gradient norm of D at real images (weight gamma/2 applied by the caller)."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(real, labels).sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def mode_seeking(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mode seeking (MSGAN, Mao et al. 2019): the inverse of how far apart two samples are, per unit of distance
    between their noise vectors, for the pairs (i, i + n/2) of the batch (of the same class when conditional): a
    generator that maps different noise to the same image pays for it."""
    half = len(fake) // 2
    if not half:  # one image has no pair (a batch of one): no term, rather than a NaN mean that ruins the generator
        return fake.new_zeros(())
    images = (fake[:half] - fake[half:2 * half]).abs().flatten(1).mean(1)
    noise = (z[:half] - z[half:2 * half]).abs().mean(1)
    return 1 / ((images / noise).mean() + 1e-5)
