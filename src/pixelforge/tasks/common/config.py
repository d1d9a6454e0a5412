"""Options the box tasks (detect, instance) share: torchvision's detector resizing and anchors."""

from __future__ import annotations

from pydantic import Field

from pixelforge.config import RunConfig


class BoxConfig(RunConfig):
    arch: str | None = Field(None, description="the detector: fasterrcnn | retinanet | fcos | ssdlite "
                                               "(detect; None: fasterrcnn) or maskrcnn (instance)")
    anchor_sizes: list[int] | None = Field(None, description="anchor box sizes in pixels, one per level")
    min_size: int | None = Field(None, ge=8, description="the detector's internal resize (default img_size)")
    max_size: int | None = Field(None, ge=8, description="the detector's longest-side cap (default img_size)")
