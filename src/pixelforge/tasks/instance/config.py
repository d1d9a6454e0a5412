"""The options of instance segmentation (on top of `pixelforge.config.RunConfig`)."""

from __future__ import annotations

from typing import Literal

from pixelforge.tasks.common.config import BoxConfig


class InstanceConfig(BoxConfig):
    task: Literal["instance"] = "instance"
