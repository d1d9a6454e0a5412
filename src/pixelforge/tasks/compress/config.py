"""The options of learned image compression (on top of `pixelforge.config.RunConfig`).

`--model factorized | hyperprior` picks Ballé et al.'s factorized prior (2017) or scale hyperprior (2018), as
CompressAI builds them; `--lambda` weighs distortion against rate in the loss `λ·255²·MSE + bpp` (CompressAI's
`RateDistortionLoss`): larger λ, more bits and higher PSNR. `img_size` is the side of the random training crops. `continue_from` starts
from another run's weights: CompressAI's users train one λ long, then fine-tune the others from it for a fraction of
the steps. `continue_checkpoint: last` takes the parent's last checkpoint with its optimizers' state instead: a
constant-lr run stays resumable while a new run decays its lr from where it stopped (a warmup-stable-decay
schedule: Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations").
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from pixelforge.config import RunConfig


class CompressConfig(RunConfig):
    # `lambda` is a Python keyword: the key is `lambda_` in Python and `lambda` in YAML and on the command line.
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)

    task: Literal["compress"] = "compress"
    model: Literal["factorized", "hyperprior"] = Field(
        "hyperprior", description="factorized (Ballé 2017) | hyperprior (Ballé 2018 scale hyperprior)")
    lambda_: float = Field(0.01, gt=0, alias="lambda",
                           description="rate-distortion trade-off λ in λ·255²·MSE + bpp (CompressAI's scale: "
                                       "0.0018 ≈ 0.15 bpp ... 0.0483 ≈ 1 bpp)")
    channels_n: int = Field(128, ge=8, description="channels of the hidden layers (CompressAI's N)")
    channels_m: int = Field(192, ge=8, description="channels of the latent y (CompressAI's M)")
    aux_lr: float = Field(1e-3, gt=0, description="learning rate of the entropy bottleneck's quantiles (aux loss)")
    crops_per_image: int = Field(8, ge=1, description="random training crops drawn from each image per epoch")
    continue_from: str | None = Field(
        None, description="start from a trained compression run's weights (its best.ckpt), e.g. to "
                          "fine-tune it at another --lambda; keys not given are the parent's")
    continue_checkpoint: Literal["best", "last"] = Field(
        "best", description="with continue_from: best (the parent's best weights, fresh optimizers) | last "
                            "(its last checkpoint and optimizer state, at this run's lr and schedule: the decay "
                            "phase of a constant-lr run)")
