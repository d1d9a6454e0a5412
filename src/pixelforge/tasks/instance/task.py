"""Instance segmentation as an engine task: detection plus a mask per object (Mask R-CNN, He et al. 2017).

Everything but the masks is shared with detection (`tasks/common/boxes.py`): the same COCO data readers and splits,
the same augmentation (transforms v2 move masks with their boxes), the same fine-tuning strategies on the encoder,
the same frozen batch-norm statistics. What differs: targets carry each object's mask, training sums Mask R-CNN's
loss dict (detection's four losses plus `loss_mask`), and validation scores the masks with pycocotools
(`iouType="segm"`) on the original images' pixels, so `val_mask_map50`, the metric that picks best.ckpt, is what
`pixelforge evaluate` reports on the same images. Box mAP is logged beside it (`val_map`, `val_map50`).
"""

from __future__ import annotations


import torch

from pixelforge.tasks.common.boxes import BoxTask, box_task_setup, plain_target
from pixelforge.tasks.instance.data import prepare_data  # noqa: F401  (the task's entry points live here too)

DEFAULT_ARCH = "maskrcnn"


class InstanceTask(BoxTask):
    """The engine's task protocol for Mask R-CNN (batches are (list of images, list of targets with masks))."""

    monitor = "val_mask_map50"

    def training_target(self, image: torch.Tensor, target: dict) -> dict:
        return instance_target(target, tuple(image.shape[-2:]))

    def image_results(self, output: dict, image_id: int, input_hw: tuple, original_wh: tuple) -> list[dict]:
        from pixelforge.tasks.instance.evaluate import instance_results

        return instance_results(output, image_id, input_hw, original_wh, self.category_ids)

    def scores(self, results: list[dict]) -> dict:
        from pixelforge.tasks.instance.evaluate import instance_metrics

        metrics = instance_metrics(self.val_gt, results)
        box = metrics["box"]
        return {"val_map": max(box["map"], 0.0), "val_map50": max(box["map50"], 0.0),
                "val_mask_map": max(metrics["map"], 0.0), "val_mask_map50": max(metrics["map50"], 0.0)}


def instance_target(target: dict, image_hw: tuple[int, int]) -> dict:
    """The plain box target plus the masks as a plain uint8 tensor [N, H, W] (none for an image without
    objects, whose target the dataset gives no masks)."""
    masks = target.get("masks")
    if masks is None:
        masks = torch.zeros((0, *image_hw), dtype=torch.uint8, device=target["boxes"].device)
    return {**plain_target(target), "masks": masks.as_subclass(torch.Tensor).to(torch.uint8)}


def _outlined(images: list) -> list:
    """Images whose objects all carry masks: a box without its outline cannot train the mask head, and an image
    left without any outline would give Mask R-CNN no mask target at all."""
    return [image for image in images if image.segmentations is not None or not len(image.boxes)]


def build_setup(cfg, source, classes: list[str], fabric, progress):
    """Mask R-CNN, its datasets (decoded once into RAM, masks included) and optimizer groups, as a `TaskSetup`."""
    from pixelforge.data.boxes.coco import coco_dict
    from pixelforge.models.instance import build_mask_rcnn

    model = build_mask_rcnn(cfg.model, len(classes), cfg.weights, cfg.img_size, cfg.anchor_sizes, cfg.min_size,
                            cfg.max_size)
    train_images, val_images = _outlined(source.split("train")), _outlined(source.split("val"))
    skipped = len(source.split("train")) + len(source.split("val")) - len(train_images) - len(val_images)
    if skipped:
        progress.info(f"{skipped} image(s) with boxes but no outlines left out (instance training needs masks)")

    def make_task(decoded_val_images):
        return InstanceTask(coco_dict(decoded_val_images, source.categories), source.category_ids,
                            frozen_encoder_norms=cfg.weights != "none")

    return box_task_setup(cfg, source, classes, fabric, progress, model, make_task, train_images, val_images,
                          {"arch": DEFAULT_ARCH, "task": "instance"})
