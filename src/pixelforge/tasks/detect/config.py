"""The options of object detection (on top of `pixelforge.config.RunConfig`)."""

from __future__ import annotations

from typing import Literal

from pixelforge.tasks.common.config import BoxConfig


class DetectConfig(BoxConfig):
    task: Literal["detect"] = "detect"
