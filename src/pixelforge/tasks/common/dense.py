"""What the box and mask tasks (detect, segment, instance) share above the engine: their card and CLI text."""

from __future__ import annotations

from pathlib import Path

from pixelforge.tasks.base import Task
from pixelforge.tasks.common.held_out import left_out_note


class DenseTask(Task):
    """A task whose predictions are boxes or masks: a shorter model card, a one-line metric summary."""

    title: str = ""  # what the model card calls the task ("object detection")
    headline_metrics: tuple = ()  # the metrics a reader wants first, in that order
    per_class_metric: str = ""  # what the per-class values of its metrics are ("IoU")
    fine_tunes = True  # --strategy linear | full | gradual on the encoder

    def write_card(self, run: Path, peak_memory: dict | None = None) -> Path:
        from pixelforge.tasks.common.dense_card import write_dense_card

        return write_dense_card(run, self, peak_memory=peak_memory)

    def format_metrics(self, metrics: dict) -> str:
        """The headline numbers, then per-class values."""
        head = [f"{k} {metrics[k]:.4f}" for k in ("map", "map50", "map75", "miou", "dice", "pixel_accuracy")
                if isinstance(metrics.get(k), (int, float))]
        per_class = metrics.get("per_class_iou") or metrics.get("per_class") or {}
        # Which images were scored, first, as classification's summary says it.
        scored = " ".join(part for part in (f"{metrics['split']}:" if metrics.get("split") else "",
                                            f"{metrics['num_images']} images" if metrics.get("num_images") is not None
                                            else "") if part)
        lines = ["  ".join(([scored] if scored else []) + head) + left_out_note(metrics)]
        lines += [f"  {name:20s} {value:.4f}" if isinstance(value, (int, float)) else f"  {name:20s} -"
                  for name, value in per_class.items()]
        return "\n".join(lines)

    def describe_prediction(self, result: dict) -> str:
        # The same line as predicting with the run's package (the torch-free runtime is a lower layer).
        from pixelforge.deploy.runtime.dense import DenseRuntime

        return DenseRuntime.describe_result(result)


class BoxTask(DenseTask):
    """Detect and instance: COCO/YOLO/VOC box annotations, checked and previewed the same way."""

    # --augment's box presets (data/boxes/transforms.py) are whole recipes, not the knobs augment_options sets; the
    # detector trains in the default memory layout on its list of differently sized images.
    fixed = {"augment_options": None, "channels_last": False}
    fixed_why = {"augment_options": "--augment's box presets have no knobs"}

    def check_dataset(self, path, **options):
        from pixelforge.data.boxes.check import check_boxes

        return check_boxes(self.builtin_or_path(path), img_size=options.get("img_size"))  # mask options do not apply

    def print_check(self, report) -> None:
        from pixelforge.data.boxes.check import print_box_report

        print_box_report(report)

    def write_preview(self, path, out, augment, img_size, count):
        from pixelforge.viz.box_preview import write_box_preview

        return write_box_preview(self.builtin_or_path(path), out, augment, img_size, count)
