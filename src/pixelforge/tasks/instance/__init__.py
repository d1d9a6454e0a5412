"""Instance segmentation: Mask R-CNN on timm encoders, COCO polygons/RLE, box and mask COCO metrics (`--task instance`)."""

from __future__ import annotations

from pixelforge.tasks.common.dense import BoxTask
from pixelforge.tasks.registry import register_task
from pixelforge.tasks.instance.config import InstanceConfig


@register_task
class InstanceTask(BoxTask):
    name = "instance"
    predict_output = "annotated"
    config_class = InstanceConfig
    description = "a mask per object: COCO json with polygons or RLE, YOLO segment labels, or built-in shapes"
    # Mask R-CNN on Lite0 at 160 px: test mask mAP50 0.86 on shapes after 10 epochs (~5 min).
    defaults = {"arch": "maskrcnn", "img_size": 160, "epochs": 10, "batch_size": 8, "strategy": "full", "lr": 2e-3}
    title = "instance segmentation"
    headline_metrics = ("map", "map50", "box_map50")
    per_class_metric = "AP@[.5:.95]"
    data_kind = "instances"
    monitor = "val_mask_map50"
    monitor_label = "val mask mAP50"

    def prepare_data(self, cfg) -> tuple:
        from pixelforge.tasks.instance.data import prepare_data

        return prepare_data(cfg)

    def build_setup(self, cfg, source, classes, fabric, progress):
        from pixelforge.tasks.instance.task import build_setup

        return build_setup(cfg, source, classes, fabric, progress)

    def write_report(self, run):
        from pixelforge.tasks.instance.report import write_instance_report

        return write_instance_report(run)

    def evaluate(self, run, *, data=None, split=None, out=None, include_train=False, **options):
        from pixelforge.tasks.instance.evaluate import evaluate_instance

        self.reject_options("evaluate", options)
        return evaluate_instance(run, data=data, split=split, out=out, include_train=include_train)

    def score_files(self, gt, predictions, **options) -> dict:
        from pixelforge.tasks.instance.evaluate import score_instance_files

        self.reject_options("evaluate --gt/--predictions", options)
        return score_instance_files(gt, predictions)

    def predict(self, run, paths, *, out=None, score_threshold: float = 0.3, nms_iou: float = 0.5, **options):
        from pixelforge.tasks.instance.evaluate import predict_instance

        self.reject_options("predict", options)
        return predict_instance(run, paths, out, score_threshold=score_threshold, nms_iou=nms_iou)

    def export(self, run, out, **options):
        from pixelforge.tasks.instance.export import export_package

        return export_package(run, out, **options)
