"""The options of image generation with GANs (on top of `pixelforge.config.RunConfig`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pixelforge.config import RunConfig


class GanConfig(RunConfig):
    task: Literal["gan"] = "gan"
    # A GAN learns from every training image; FID compares with the data's val/ split when it has one, else with
    # training images (as StyleGAN's and torch-fidelity's FID against the training set do). Nothing is held out.
    val_fraction: float = Field(0.0, ge=0, lt=1, description="a GAN holds out no images (FID compares with a val/ "
                                                              "split when the data has one, else with training images)")
    conditional: bool = Field(False, description="class-conditional generator and projection discriminator")
    loss: Literal["hinge", "ns", "wgan-gp"] = Field(
        "hinge", description="the training loss")
    latent_dim: int = Field(128, ge=2, description="length of the generator's noise vector")
    width: int = Field(16, ge=8, description="channels of the generator's last and the discriminator's first layer")
    g_width: int | None = Field(None, ge=8, description="channels of the generator's last layer (default: --width "
                                                           "times --img-size / --native-size)")
    native_size: int | None = Field(
        None, ge=8, description="the generator draws this many pixels a side and enlarges them to --img-size with a "
                                "fixed bicubic filter (default: the data's own size: 8 for built-in digits, else "
                                "--img-size)")
    d_size: int | None = Field(
        None, ge=8, description="the discriminator judges images resized to this many pixels a side (antialiased "
                                "bicubic, real and generated alike; default: the generator's --native-size)")
    d_width: int | None = Field(None, ge=8, description="channels of the discriminator's first layer (default: "
                                                           "--width times --img-size / --d-size)")
    d_steps: int = Field(1, ge=1, description="discriminator steps per generator step")
    lr_d: float | None = Field(None, gt=0, description="the discriminator's learning rate (default: lr)")
    label_dim: int = Field(32, ge=0, description="conditional: length of the learned class embedding fed to the "
                                                 "generator beside the noise (0: the class enters through its batch "
                                                 "norms only)")
    aux_weight: float = Field(0.2, ge=0, description="conditional: weight of the auxiliary classifier's cross-entropy "
                                                     "(AC-GAN; 0: projection discriminator only)")
    mode_seeking: float = Field(0.05, ge=0, description="weight of the mode-seeking term (MSGAN): the generator pays for "
                                                       "mapping two noise vectors of one class to alike images")
    r1: float = Field(0.0, ge=0, description="R1 penalty weight on real images' gradients (0: off)")
    gp: float = Field(10.0, ge=0, description="wgan-gp: the gradient-penalty weight")
    diffaugment: Literal["translation,cutout", "translation", "cutout", "none"] = Field(
        "translation,cutout", description="differentiable augmentation of both players' discriminator inputs "
                                          "(DiffAugment; for small datasets)")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="decay of the EMA generator used for sampling")
    fid_n: int = Field(128, ge=16, description="images per side for the per-epoch validation FID")
    eval_n: int = Field(500, ge=16, description="images per side for `evaluate`'s FID/KID and its real-vs-real floor")
    fid_weights: str | None = Field(None, description="a local Inception-v3 FID weights file (pt_inception-2015-12-05); "
                                                      "default: the bundled EfficientNet-Lite0 features (fid_lite0)")
