"""Object detection as an engine task: data, detector, loss-dict step, COCO mAP validation and fine-tuning strategies.

The engine (engine/train.py) calls `prepare_data`, then `build_setup`, trains, and has the task write its report (report.py). Training
sums the detector's own loss dict (each family's published losses). Validation runs the detector in eval mode,
maps its boxes back to the original images' pixels and category ids, and scores them with pycocotools against
the val split's ground truth, so `val_map50` (the metric that picks best.ckpt) is exactly what `pixelforge
evaluate` would report on the same images.

What detection shares with instance segmentation (the step, the setup around the detector, COCO results) is in
tasks/common/boxes.py; the fine-tuning strategies, models/finetune.py's, act on the pretrained encoder
(`models.detectors.encoder_of`) while FPN and heads, being new, always learn.
"""

from __future__ import annotations


from pixelforge.errors import PixelforgeError
from pixelforge.metrics.coco import coco_metrics
from pixelforge.models.detectors import DEFAULT_ARCH, build_detector, check_detector_options
from pixelforge.tasks.common.boxes import BoxTask, box_task_setup


class DetectionTask(BoxTask):
    """Detection scored by COCO box mAP; `val_map50` picks best.ckpt."""

    monitor = "val_map50"

    def scores(self, results: list[dict]) -> dict:
        metrics = coco_metrics(self.val_gt, results)
        return {"val_map": max(metrics["map"], 0.0), "val_map50": max(metrics["map50"], 0.0)}


def prepare_data(cfg):
    """Read and check the boxes, give every image a split; classes are the category names in id order."""
    from pixelforge.data.boxes.source import make_box_splits, read_boxes

    check_detector_options(cfg.arch or DEFAULT_ARCH, cfg.model, cfg.weights, cfg.anchor_sizes)
    data = cfg.data
    if data == "shapes":
        from pixelforge.data.builtin import materialize

        data = str(materialize("shapes", kind="boxes"))
    source = make_box_splits(read_boxes(data), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    train, val = source.split("train"), source.split("val")
    if not train or not val:
        raise PixelforgeError(f"{source.origin}: need images in both train and val splits "
                              f"(found {len(train)} train, {len(val)} val)")
    if not any(len(image.boxes) for image in train):
        raise PixelforgeError(f"{source.origin}: the training images have no boxes; nothing to learn from")
    return source, list(source.classes)


def build_setup(cfg, source, classes: list[str], fabric, progress):
    """The detector, its datasets (decoded once into RAM) and optimizer groups, as a `TaskSetup`."""
    from pixelforge.data.boxes.coco import coco_dict

    arch = cfg.arch or DEFAULT_ARCH
    model = build_detector(arch, cfg.model, len(classes), cfg.weights, cfg.img_size, cfg.anchor_sizes,
                           cfg.min_size, cfg.max_size)

    def make_task(val_images):
        return DetectionTask(coco_dict(val_images, source.categories), source.category_ids,
                             frozen_encoder_norms=cfg.weights != "none")

    return box_task_setup(cfg, source, classes, fabric, progress, model, make_task, source.split("train"),
                          source.split("val"), {"arch": arch, "task": "detect"})
