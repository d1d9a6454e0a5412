"""The options of semantic segmentation (on top of `pixelforge.config.RunConfig`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pixelforge.config import RunConfig


class SegmentConfig(RunConfig):
    task: Literal["segment"] = "segment"
    arch: str | None = Field(None, description="unet | fpn | deeplabv3plus | deeplabv3 | lraspp (None: unet)")
    loss: Literal["ce", "dice", "focal", "ce+dice", "focal+dice"] = Field("ce+dice", description="the training loss")
    ignore_index: int = Field(255, description="mask value that is not scored and not learnt")
    class_weights: list[float] | None = Field(None, description="cross-entropy weight per class")
    in_channels: int | None = Field(None, ge=1, description="image channels (None: from the data)")
    normalize: Literal["auto", "imagenet", "dataset"] = Field(
        "auto", description="auto = the data's own mean/std for 1-channel or 16-bit images, else the encoder's")
