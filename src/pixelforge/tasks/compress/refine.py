"""Encoder-side latent refinement: better latents for one image, found at compress time, decoded as usual.

The trained encoder gives an amortized guess of each image's latents; a per-image search does better (Campos et
al. 2019, "Content adaptive optimization for neural image compression"). Here y (and z for the hyperprior) start
from the encoder's output and follow Adam on this image's own `λ·255²·MSE + bpp` with every weight frozen; the
coder then rounds and codes them as it always does, so the decoder, the .pfc format and the decode time do not
change: only encoding costs more. Rounding is relaxed with stochastic Gumbel annealing (SGA; Yang, Bamler & Mandt
2020, "Improving inference for neural image compression"): each latent is rounded down or up at random, with
odds that sharpen as the temperature falls, so the search ends among rounded latents instead of near them.

It needs torch autograd, so it runs from a run folder only; a package (ONNX) still decodes the files it writes.

Example:
    >>> refiner = LatentRefiner(model, lmbda=0.01, steps=100)  # doctest: +SKIP
    >>> data = compress_pixels(pixels, codec, transforms, refine=refiner)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from pixelforge.errors import PixelforgeError

DEFAULT_LR = 8e-2  # chosen by benchmarks/compress_refine.py on validation images (docs/compression.md)
TAU_MAX = 0.5  # Yang et al.'s starting temperature
# Yang et al. hold τ for 700 of 2000 steps, then decay it as exp(-1e-3 t): the same shape over any step count.
HOLD_FRACTION, DECAY = 0.35, 2.0
CHECK_EVERY = 10  # steps between checks of the rounded latents' loss (the best one checked is kept)


def temperature(step: int, steps: int) -> float:
    """SGA's temperature at `step` of `steps`: TAU_MAX, then an exponential decay to ~0.27 TAU_MAX at the end."""
    return TAU_MAX * math.exp(-DECAY * max(0.0, step / steps - HOLD_FRACTION))


def sga_round(mu: torch.Tensor, tau: float, generator: torch.Generator) -> torch.Tensor:
    """One SGA sample of `mu`: floor(mu) or floor(mu) + 1, relaxed at temperature `tau` (differentiable in mu)."""
    eps = 1e-5
    floor = torch.floor(mu)
    # The logit of each direction falls with the distance to that integer (-atanh(distance) / τ, Yang et al. §3.2).
    down = -torch.atanh((mu - floor).clamp(max=1 - eps)) / tau
    up = -torch.atanh((floor + 1 - mu).clamp(max=1 - eps)) / tau
    # Gumbel-softmax over two outcomes: the difference of two Gumbel draws is a logistic draw.
    u = torch.rand(mu.shape, generator=generator).clamp(eps, 1 - eps)
    return floor + torch.sigmoid((up - down + torch.log(u) - torch.log1p(-u)) / tau)


def bottleneck_bits(bottleneck, v: torch.Tensor) -> torch.Tensor:
    """Bits of latents `v` [1, C, h, w] under CompressAI's EntropyBottleneck (one density per channel)."""
    values = v.permute(1, 0, 2, 3).reshape(v.shape[1], 1, -1)
    likelihood, _, _ = bottleneck._likelihood(values)
    return -torch.log2(bottleneck.likelihood_lower_bound(likelihood)).sum()


def rd_loss(model, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor | None, height: int, width: int,
            lmbda: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(λ·255²·MSE + bpp, bpp, MSE) of latents already on the integer grid, on the image's own pixels only."""
    x_hat = model.g_s(y)[..., :height, :width].clamp(0, 1)  # the decoder crops the padding and clips
    mse = torch.mean((x_hat - x[..., :height, :width]) ** 2)
    if z is None:
        bits = bottleneck_bits(model.entropy_bottleneck, y)
    else:
        gc = model.gaussian_conditional
        likelihood = gc.likelihood_lower_bound(gc._likelihood(y, model.h_s(z)))
        bits = -torch.log2(likelihood).sum() + bottleneck_bits(model.entropy_bottleneck, z)
    bpp = bits / (height * width)
    return lmbda * 255 ** 2 * mse + bpp, bpp, mse


def make_refiner(model, lmbda: float, steps: int, lr: float | None = None) -> "LatentRefiner | None":
    """The refiner the `--refine N [--refine-lr LR]` options ask for (None for 0 steps); an lr alone is refused."""
    if lr is not None and not steps:
        raise PixelforgeError("--refine-lr sets the refinement's learning rate: give --refine N steps with it")
    return LatentRefiner(model, lmbda, steps, DEFAULT_LR if lr is None else lr) if steps else None


@contextmanager
def frozen(model):
    """The model's weights without gradients for a while (only the latents learn)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@dataclass
class LatentRefiner:
    """`compress_pixels`'s `refine`: `steps` of SGA on one image's latents. Seeded: the same image, the same file.

    `records` keeps one dict per image: the loss (and bpp, PSNR) of the encoder's rounded latents and of the kept ones.
    """

    model: torch.nn.Module
    lmbda: float
    steps: int
    lr: float = DEFAULT_LR
    seed: int = 0
    records: list = field(default_factory=list)

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray | None, height: int, width: int) -> tuple:
        # Where the coder's integer grid lies: y - median (factorized), y itself and z - median (hyperprior).
        median = self.model.entropy_bottleneck.quantiles[:, 0, 1].detach().reshape(1, -1, 1, 1)
        offsets = [median] if z is None else [torch.zeros(()), median]
        latents = [torch.from_numpy(v).clone() for v in ([y] if z is None else [y, z])]
        with frozen(self.model), torch.enable_grad():
            kept = self._search(torch.from_numpy(x), latents, offsets, height, width)
        out = [v.numpy() for v in kept]
        return out[0], (out[1] if z is not None else None)

    def _search(self, x, latents, offsets, height, width) -> list[torch.Tensor]:
        def rounded_loss(values):
            with torch.no_grad():
                grid = [torch.round(v - o) + o for v, o in zip(values, offsets)]
                return rd_loss(self.model, x, grid[0], grid[1] if len(grid) > 1 else None, height, width, self.lmbda)

        start = rounded_loss(latents)
        best, kept = float(start[0]), [v.clone() for v in latents]
        generator = torch.Generator().manual_seed(self.seed)
        params = [v.requires_grad_(True) for v in latents]
        optimizer = torch.optim.Adam(params, lr=self.lr)
        for step in range(self.steps):
            tau = temperature(step, self.steps)
            relaxed = [sga_round(v - o, tau, generator) + o for v, o in zip(params, offsets)]
            loss, _, _ = rd_loss(self.model, x, relaxed[0], relaxed[1] if len(relaxed) > 1 else None, height, width,
                                 self.lmbda)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if (step + 1) % CHECK_EVERY == 0 or step + 1 == self.steps:
                # SGA's samples are noisy: keep the best rounded latents seen, never worse than the encoder's.
                checked = float(rounded_loss(params)[0])
                if checked < best:
                    best, kept = checked, [v.detach().clone() for v in params]
        end = rounded_loss(kept)
        self.records.append({"steps": self.steps, "loss_start": float(start[0]), "loss": float(end[0]),
                             "bpp_start": float(start[1]), "bpp": float(end[1]),
                             "psnr_start": -10 * math.log10(max(float(start[2]), 1e-12)),
                             "psnr": -10 * math.log10(max(float(end[2]), 1e-12))})
        return kept
