"""The engine's step for compression: the rate-distortion loss on the main parameters, the aux loss on the entropy
bottleneck's quantiles with its own optimizer (CompressAI's examples/train.py, in the engine's manual mode).

Validation runs the model in eval mode, where latents are rounded (not noised): `val_bpp` is the entropy model's
estimate of the rate of the rounded latents, which the real file matches within a few percent (tests check it).
"""

from __future__ import annotations

import math

import torch

from pixelforge.engine.schedule import build_scheduler


def is_aux(name: str) -> bool:
    """The entropy bottleneck's quantiles learn from the aux loss only (CompressAI's parameter split)."""
    return name.endswith(".quantiles")


def continue_optimizer(optimizer: torch.optim.Optimizer, state: dict, lr: float) -> None:
    """Take a parent run's Adam state (its moment estimates: a decay phase continues the same optimizer, as
    warmup-stable-decay schedules do) but this run's lr; loading would otherwise bring back the parent's."""
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        group["lr"] = lr
        group.pop("initial_lr", None)  # a parent's scheduler's base lr: this run's scheduler takes `lr` instead


class CompressionStep:
    monitor = "val_loss"
    monitor_mode = "min"
    automatic_optimization = False

    def __init__(self, model, lmbda: float, aux_lr: float, grad_clip: float | None = 1.0, schedule: str = "constant",
                 optimizer_states: dict | None = None):
        from compressai.losses import RateDistortionLoss

        self.model, self.aux_lr, self.grad_clip, self.schedule = model, aux_lr, grad_clip, schedule
        self.optimizer_states = optimizer_states  # a parent run's {"main", "aux"} state dicts, to continue from
        self.criterion = RateDistortionLoss(lmbda=lmbda)

    def configure_optimizers(self, lr: float, total_steps: int, warmup_steps: int) -> dict:
        named = dict(self.model.named_parameters())
        main = torch.optim.Adam([p for n, p in named.items() if not is_aux(n)], lr=lr)
        aux = torch.optim.Adam([p for n, p in named.items() if is_aux(n)], lr=self.aux_lr)
        if self.optimizer_states:
            continue_optimizer(main, self.optimizer_states["main"], lr)
            continue_optimizer(aux, self.optimizer_states["aux"], self.aux_lr)
        # CompressAI's examples keep the lr constant and lower it on a plateau; here `--schedule cosine` decays the
        # main lr to zero over the planned steps instead (a short run cannot wait for plateaus). Aux stays constant.
        plain = self.schedule == "constant" and not warmup_steps
        scheduler = None if plain else build_scheduler(self.schedule, main, total_steps, warmup_steps)
        return {"main": (main, scheduler), "aux": (aux, None)}

    def training_step(self, model, batch: torch.Tensor, ctx) -> dict:
        main, aux = ctx.optimizers["main"], ctx.optimizers["aux"]
        out = self.criterion(model(batch), batch)
        main.zero_grad(set_to_none=True)
        ctx.backward(out["loss"])
        if self.grad_clip:
            ctx.clip("main", self.grad_clip)
        main.step()
        if ctx.schedulers.get("main") is not None:
            ctx.schedulers["main"].step()
        aux_loss = self.model.aux_loss()  # the unwrapped model: aux_loss is a method, not its forward
        aux.zero_grad(set_to_none=True)
        ctx.backward(aux_loss)
        aux.step()
        return {"loss": out["loss"].detach(), "bpp": out["bpp_loss"].detach(), "mse": out["mse_loss"].detach(),
                "aux": aux_loss.detach(), "count": len(batch)}

    @torch.no_grad()
    def validate(self, model, batches, fabric) -> dict:
        sums = torch.zeros(4, dtype=torch.float64, device=fabric.device)  # loss, bpp, mse (all per image), images
        for batch in batches:
            for image in batch:  # per image, so the PSNR is a mean over images as evaluate reports it
                out = self.criterion(model(image[None]), image[None])
                sums += torch.tensor([float(out["loss"]), float(out["bpp_loss"]), float(out["mse_loss"]), 1.0],
                                     dtype=torch.float64, device=fabric.device)
        sums = fabric.all_reduce(sums, reduce_op="sum").cpu()
        n = max(float(sums[3]), 1.0)
        return {"val_loss": float(sums[0]) / n, "val_bpp": float(sums[1]) / n,
                "val_psnr": 10 * math.log10(1.0 / max(float(sums[2]) / n, 1e-12))}  # of the mean MSE
