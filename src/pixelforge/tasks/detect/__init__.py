"""Object detection: torchvision's detectors on timm encoders, COCO/YOLO/VOC data, COCO metrics (`--task detect`)."""

from __future__ import annotations

from pixelforge.tasks.common.dense import BoxTask
from pixelforge.tasks.registry import register_task
from pixelforge.tasks.detect.config import DetectConfig


@register_task
class DetectTask(BoxTask):
    name = "detect"
    predict_output = "annotated"
    config_class = DetectConfig
    description = "boxes: COCO json/folder, YOLO data.yaml, VOC folder, or built-in shapes"
    # Faster R-CNN + FPN on Lite0 at 160 px: test mAP50 0.92 on shapes after 16 epochs (0.91 after 12).
    defaults = {"arch": "fasterrcnn", "img_size": 160, "epochs": 16, "batch_size": 8, "strategy": "full", "lr": 2e-3}
    title = "object detection"
    headline_metrics = ("map", "map50", "map75")
    per_class_metric = "AP@[.5:.95]"
    data_kind = "boxes"
    monitor = "val_map50"
    monitor_label = "val mAP50"

    def check_config(self, cfg) -> None:
        from pixelforge.errors import PixelforgeError

        if cfg.arch == "ssdlite" and cfg.batch_size < 2:  # else a ValueError traceback from the first step
            raise PixelforgeError(f"--batch-size {cfg.batch_size}: ssdlite's BatchNorm layers on its 1x1 last feature "
                                  f"maps need 2 or more images a step")

    def prepare_data(self, cfg) -> tuple:
        from pixelforge.tasks.detect.task import prepare_data

        return prepare_data(cfg)

    def build_setup(self, cfg, source, classes, fabric, progress):
        from pixelforge.tasks.detect.task import build_setup

        return build_setup(cfg, source, classes, fabric, progress)

    def write_report(self, run):
        from pixelforge.tasks.detect.report import write_detection_report

        return write_detection_report(run)

    def evaluate(self, run, *, data=None, split=None, out=None, include_train=False, **options):
        from pixelforge.tasks.detect.evaluate import evaluate_detection

        self.reject_options("evaluate", options)
        return evaluate_detection(run, data=data, split=split, out=out, include_train=include_train)

    def score_files(self, gt, predictions, **options) -> dict:
        from pixelforge.tasks.detect.evaluate import score_coco_files

        self.reject_options("evaluate --gt/--predictions", options)
        return score_coco_files(gt, predictions)

    def predict(self, run, paths, *, out=None, score_threshold: float = 0.3, nms_iou: float = 0.5, **options):
        from pixelforge.tasks.detect.evaluate import predict_detection

        self.reject_options("predict", options)
        return predict_detection(run, paths, out, score_threshold=score_threshold, nms_iou=nms_iou)

    def export(self, run, out, **options):
        from pixelforge.tasks.detect.export import export_package

        return export_package(run, out, **options)
