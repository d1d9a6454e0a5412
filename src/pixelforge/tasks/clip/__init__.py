"""Contrastive image-text pretraining (CLIP) on captioned images, for zero-shot classification (`--task clip`)."""

from __future__ import annotations

from pixelforge.tasks.base import IN_MEMORY_BATCHES, IN_MEMORY_BATCHES_WHY, IN_RAM, IN_RAM_WHY, Task
from pixelforge.tasks.common.card_hook import CardFromFacts
from pixelforge.tasks.clip.config import ClipConfig
from pixelforge.tasks.registry import register_task


@register_task
class ClipTask(CardFromFacts, Task):
    name = "clip"
    config_class = ClipConfig
    description = "an image and a text encoder in one embedding (CLIP), for zero-shot labels: COCO captions or shapes"
    # Frozen Lite0 features, projection + text transformer only: held-out zero-shot accuracy in docs/zero-shot.md.
    defaults = {"img_size": 64, "epochs": 20, "batch_size": 128, "lr": 1e-3, "strategy": "linear",
                "warmup_epochs": 1.0, "weight_decay": 0.1}  # and `fixed`
    # Its images (or their encoder features) decoded once into tensors, never augmented; the model in the default
    # memory layout.
    fixed = {"augment": "none", "augment_options": None, **IN_RAM, **IN_MEMORY_BATCHES, "channels_last": False}
    fixed_why = {**IN_RAM_WHY, **IN_MEMORY_BATCHES_WHY, "augment_options": "it trains without augmentation"}
    data_kind = "captions"
    fine_tunes = True  # --strategy linear | full | gradual on the image trunk
    monitor = "val_recall1"
    monitor_label = "val recall@1"

    def run_name(self, cfg) -> str:
        from pathlib import Path

        return f"clip-{cfg.model}-{Path(cfg.data).stem}"

    def check_config(self, cfg) -> None:
        from pixelforge.errors import PixelforgeError
        from pixelforge.tasks.clip.task import run_templates

        if cfg.batch_size < 2:  # a lone pair is its own only candidate: the contrastive loss is 0 and nothing learns
            raise PixelforgeError(f"--batch-size {cfg.batch_size}: contrastive training matches each image against "
                                  f"the other captions of its batch; give 2 or more")

        run_templates(cfg)

    def prepare_data(self, cfg):
        from pixelforge.tasks.common.captions import read_caption_source

        return read_caption_source(cfg), []

    def build_setup(self, cfg, source, classes, fabric, progress):
        from pixelforge.tasks.clip.task import build_setup

        return build_setup(cfg, source, classes, fabric, progress)

    def check_dataset(self, path, **options):
        from pixelforge.data.captions.check import check_captions

        return check_captions(self.builtin_or_path(path))

    def print_check(self, report) -> None:
        from pixelforge.data.captions.check import print_caption_check

        print_caption_check(report)

    def write_report(self, run):
        from pixelforge.tasks.clip.report import write_clip_report

        return write_clip_report(run)

    def evaluate(self, run, *, data=None, split=None, out=None, include_train=False, **options):
        from pixelforge.tasks.clip.evaluate import evaluate_clip

        self.reject_options("evaluate", options)
        return evaluate_clip(run, data=data, split=split, out=out, include_train=include_train)

    def format_metrics(self, metrics: dict) -> str:
        from pixelforge.tasks.common.held_out import left_out_note

        text = (f"recall@1 image->text {100 * metrics['recall1_image_to_text']:.1f}%  "
                f"text->image {100 * metrics['recall1_text_to_image']:.1f}%  ({metrics['num_images']} images)"
                + left_out_note(metrics))
        if "zeroshot_accuracy" in metrics:
            text += (f"\nzero-shot accuracy {100 * metrics['zeroshot_accuracy']:.1f}% with the prompt ensemble, "
                     f"{100 * metrics['zeroshot_accuracy_single_template']:.1f}% with one template, "
                     f"{100 * metrics['zeroshot_accuracy_bare_label']:.1f}% with the bare label; chance "
                     f"{100 * metrics['chance']:.1f}% ({metrics['zeroshot_images']} single-object images, "
                     f"{metrics['zeroshot_labels']} labels)")
        return text

    def card_facts(self, run, cfg, summary):
        from pixelforge.tasks.clip.card import card_facts

        return card_facts(run, cfg, summary)

    def export(self, run, out, **options):
        from pixelforge.tasks.clip.export import export_package

        return export_package(run, out, **options)

    def predict(self, run, paths, *, out=None, **options):
        from pixelforge.errors import PixelforgeError

        # was "predict: not available for task 'clip'", while its package's refusal named the command
        raise PixelforgeError(f"{run}: a clip run labels images by class names given with them: pixelforge zeroshot "
                              f"IMAGES --run {run} --labels \"a,b\"")

    def zero_shot_model(self, run):
        """`pixelforge zeroshot --run RUN`: the run as a `models.zeroshot.ZeroShotModel`."""
        from pixelforge.tasks.clip.run import load_clip_run

        return load_clip_run(run)[0]
