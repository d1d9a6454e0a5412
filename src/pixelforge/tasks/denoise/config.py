"""The options of denoising (on top of `pixelforge.config.RunConfig`).

`--model dncnn | unet` picks the network (models.py); `img_size` is the side of the random training crops; the
noise model is `--noise` (pixelforge/data/noise.py documents every kind, its scale and its clipping).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pixelforge.config import RunConfig


class DenoiseConfig(RunConfig):
    task: Literal["denoise"] = "denoise"
    noise: str = Field("gaussian:25", description="synthetic noise: gaussian:SIGMA (0-255 scale) | poisson:PEAK | "
                                                  "saltpepper:AMOUNT | jpeg:QUALITY, joined by + (in turn) or | "
                                                  "(one of); ignored for paired noisy/ + clean/ data")
    channels: int = Field(3, description="1: grayscale model (colour images are converted), 3: colour")
    encoder: str = Field("tf_efficientnet_lite0", description="unet: the pretrained timm encoder")
    depth: int = Field(8, ge=3, description="dncnn: convolution layers")
    features: int = Field(32, ge=4, description="dncnn: channels of the hidden layers")
    shuffle: int = Field(1, ge=1, le=4, description="dncnn: run the body at 1/shuffle resolution on pixel-unshuffled "
                                                   "input (FFDNet's speed-up); 1 = the original DnCNN")
    crops_per_image: int = Field(6, ge=1, description="random training crops drawn from each image per epoch")

    @field_validator("channels")
    @classmethod
    def _one_or_three(cls, value: int) -> int:
        if value not in (1, 3):
            raise ValueError("must be 1 (grayscale) or 3 (colour)")
        return value

    @field_validator("noise")
    @classmethod
    def _parses(cls, value: str) -> str:
        from pixelforge.data.noise import parse_noise

        try:
            return parse_noise(value).spec
        except Exception as exc:  # noqa: BLE001 - the parser's one line becomes pydantic's message
            # which names the key already ("noise: ..."): the parser's "--noise " is not said twice
            raise ValueError(str(exc).removeprefix("--noise ")) from None
