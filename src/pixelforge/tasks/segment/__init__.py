"""Semantic segmentation: U-Net/FPN/DeepLab on timm encoders, index masks, mIoU and Dice (`--task segment`)."""

from __future__ import annotations

from pixelforge.tasks.common.dense import DenseTask
from pixelforge.tasks.registry import register_task
from pixelforge.tasks.segment.config import SegmentConfig


@register_task
class SegmentTask(DenseTask):
    name = "segment"
    predict_output = "mask"
    config_class = SegmentConfig
    description = "a class per pixel: images/ + masks/ folders, VOC, COCO json, or built-in shapes"
    # U-Net on Lite0 at 128 px: test mIoU 0.86 on shapes after 16 epochs; 20 for a margin (docs/segmentation.md).
    defaults = {"arch": "unet", "img_size": 128, "epochs": 20, "batch_size": 8, "strategy": "full", "lr": 2e-3}
    title = "semantic segmentation"
    headline_metrics = ("miou", "dice", "pixel_accuracy")
    per_class_metric = "IoU"
    data_kind = "masks"
    monitor = "val_miou"
    monitor_label = "val mIoU"
    bf16_measured = True  # U-Net on Lite0, 128 px: 1.43x per step at the same mIoU (docs/performance.md)

    def check_config(self, cfg) -> None:
        from pixelforge.data.augment_options import MASK_KNOBS
        from pixelforge.errors import PixelforgeError

        given = cfg.augment_options.model_dump(exclude_none=True) if cfg.augment_options else {}
        other = [key for key in given if key not in MASK_KNOBS]
        if other:  # else silently left out of the mask presets (data/masks/transforms.py)
            raise PixelforgeError(f"augment_options.{other[0]} {given[other[0]]}: --task segment's mask augmentation "
                                  f"does not read {other[0]} (its knobs: {', '.join(MASK_KNOBS)}); leave it out")

    def check_dataset(self, path, ignore_index: int = 255, num_classes: int | None = None, **options):
        from pixelforge.data.masks.check import check_masks

        return check_masks(self.builtin_or_path(path), ignore_index=ignore_index, num_classes=num_classes,
                           img_size=options.get("img_size"))

    def print_check(self, report) -> None:
        from pixelforge.data.masks.check import print_mask_report

        print_mask_report(report)

    def write_preview(self, path, out, augment, img_size, count):
        from pixelforge.viz.mask_preview import write_mask_preview

        return write_mask_preview(self.builtin_or_path(path), out, augment, img_size, count)

    def prepare_data(self, cfg) -> tuple:
        from pixelforge.tasks.segment.task import prepare_data

        return prepare_data(cfg)

    def build_setup(self, cfg, source, classes, fabric, progress):
        from pixelforge.tasks.segment.task import build_setup

        return build_setup(cfg, source, classes, fabric, progress)

    def write_report(self, run):
        from pixelforge.tasks.segment.report import write_segmentation_report

        return write_segmentation_report(run)

    def evaluate(self, run, *, data=None, split=None, out=None, include_train=False, **options):
        from pixelforge.tasks.segment.evaluate import evaluate_segmentation

        self.reject_options("evaluate", options)
        return evaluate_segmentation(run, data=data, split=split, out=out, include_train=include_train)

    def score_files(self, gt, predictions, *, num_classes: int | None = None, ignore_index: int | None = None,
                    **options) -> dict:
        from pathlib import Path

        from pixelforge.data.masks.source import class_names_near
        from pixelforge.errors import PixelforgeError
        from pixelforge.tasks.segment.evaluate import score_mask_folders

        self.reject_options("evaluate --gt/--predictions", options)
        # The scores name the classes as the dataset does when its classes.json/.txt is found above the masks.
        names = class_names_near(Path(gt))
        if num_classes is None and names is None:
            raise PixelforgeError(f"{gt}: no classes.json or classes.txt in it or above it; evaluate --task segment "
                                  f"--gt/--predictions needs --num-classes K")
        num_classes = len(names) if num_classes is None else num_classes
        classes = names if names is not None and len(names) == num_classes else None
        return score_mask_folders(gt, predictions, num_classes, ignore_index, classes)

    def predict(self, run, paths, *, out=None, **options):
        from pixelforge.tasks.segment.evaluate import predict_segmentation

        self.reject_options("predict", options)
        return predict_segmentation(run, paths, out)

    def export(self, run, out, **options):
        from pixelforge.tasks.segment.export import export_package

        return export_package(run, out, **options)
