"""Reading instance-segmentation data for training, evaluation and export: COCO annotations with outlines."""

from __future__ import annotations

from pixelforge.errors import PixelforgeError


def prepare_data(cfg):
    """Read and check COCO instance annotations, give every image a split; classes are category names by id."""
    from pixelforge.data.boxes.source import make_box_splits, read_boxes
    from pixelforge.models.instance import check_instance_options

    check_instance_options(cfg.arch, cfg.model, cfg.weights, cfg.anchor_sizes)
    data = cfg.data
    if data == "shapes":
        from pixelforge.data.builtin import materialize

        data = str(materialize("shapes", kind="instances"))
    source = make_box_splits(read_boxes(data), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    require_outlines(source.images, source.origin, "instance segmentation needs them: add outlines, or use --task "
                                                   "detect")
    train, val = source.split("train"), source.split("val")
    if not train or not val:
        raise PixelforgeError(f"{source.origin}: need images in both train and val splits "
                              f"(found {len(train)} train, {len(val)} val)")
    if not any(len(image.boxes) and image.segmentations is not None for image in train):
        raise PixelforgeError(f"{source.origin}: the training images have no outlined objects; nothing to learn from")
    return source, list(source.classes)


def require_outlines(images: list, origin, fix: str) -> None:
    """Refuse `images` none of which has an outline: mask AP would only score the box-shaped masks that stand in
    for missing ones (see evaluate.complete_segm_ground_truth). `fix` ends the message."""
    if not any(image.segmentations is not None for image in images):
        raise PixelforgeError(f"{origin}: no object has an outline (COCO 'segmentation' polygons or RLE, or YOLO "
                              f"segment lines `class x1 y1 x2 y2 x3 y3 ...`); {fix}")
