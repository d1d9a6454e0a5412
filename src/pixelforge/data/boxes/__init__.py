"""Object-detection data: COCO / YOLO / Pascal VOC readers and writers, checks, transforms and the built-in shapes set.

Every format becomes one `BoxSource` (a list of `BoxImage`s with absolute XYXY boxes and COCO category ids), so the
detection task never asks where the data came from. Start at `source.read_boxes`.
"""

from pixelforge.data.boxes.source import BoxImage, BoxSource, make_box_splits, read_boxes

__all__ = ["BoxImage", "BoxSource", "make_box_splits", "read_boxes"]
