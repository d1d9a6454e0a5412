"""Image captioning with visual attention (Show, Attend and Tell): COCO captions or captions.csv (`--task caption`)."""

from __future__ import annotations

from pixelforge.tasks.base import IN_MEMORY_BATCHES, IN_MEMORY_BATCHES_WHY, IN_RAM, IN_RAM_WHY, Task
from pixelforge.tasks.common.card_hook import CardFromFacts
from pixelforge.tasks.caption.config import CaptionConfig
from pixelforge.tasks.registry import register_task


@register_task
class CaptionTask(CardFromFacts, Task):
    name = "caption"
    config_class = CaptionConfig
    description = "a sentence per image: COCO-captions json, captions.csv, or built-in shapes"
    # Frozen Lite0 features, decoder only; 3 epochs over the 6,000-scene built-in set fit the 10 quiet minutes
    # (docs/captioning.md: test BLEU-4 and attribute match on held-out pairs).
    defaults = {"img_size": 128, "epochs": 3, "batch_size": 64, "lr": 3e-3, "strategy": "linear", "grad_clip": 5.0,
                "warmup_epochs": 0.3}  # and `fixed`
    # Its images (or their encoder features) decoded once into tensors, never augmented; the model in the default
    # memory layout.
    fixed = {"augment": "none", "augment_options": None, **IN_RAM, **IN_MEMORY_BATCHES, "channels_last": False}
    fixed_why = {**IN_RAM_WHY, **IN_MEMORY_BATCHES_WHY, "augment_options": "it trains without augmentation"}
    data_kind = "captions"
    fine_tunes = True  # --strategy linear | full | gradual on the encoder
    monitor = "val_bleu4"
    monitor_label = "val BLEU-4"

    def monitor_of(self, cfg) -> tuple[str, str]:
        from pixelforge.tasks.caption.task import caption_monitor

        return caption_monitor(cfg)

    def run_name(self, cfg) -> str:
        from pathlib import Path

        return f"caption-{cfg.model}-{Path(cfg.data).stem}"

    def check_config(self, cfg) -> None:
        from pixelforge.models.captioner import check_encoder

        check_encoder(cfg.model, cfg.feature_stride)  # an unknown or unfit backbone, before the run folder

    def prepare_data(self, cfg):
        from pixelforge.tasks.caption.task import prepare_data

        return prepare_data(cfg)

    def build_setup(self, cfg, source, classes, fabric, progress):
        from pixelforge.tasks.caption.task import build_setup

        return build_setup(cfg, source, classes, fabric, progress)

    def check_dataset(self, path, **options):
        from pixelforge.data.captions.check import check_captions

        return check_captions(self.builtin_or_path(path))

    def print_check(self, report) -> None:
        from pixelforge.data.captions.check import print_caption_check

        print_caption_check(report)

    def write_report(self, run):
        from pixelforge.data.captions.tokenizer import Tokenizer
        from pixelforge.runs import folder as rd
        from pixelforge.tasks.caption.report import write_caption_report

        state = rd.load_checkpoint(run / "checkpoints" / "best.ckpt")
        Tokenizer(state["vocab"], state.get("min_count", 1)).save(run / "tokenizer.json")
        return write_caption_report(run)

    def evaluate(self, run, *, data=None, split=None, out=None, beam=None, include_train=False, **options):
        from pixelforge.tasks.caption.evaluate import evaluate_captions

        self.reject_options("evaluate", options)
        return evaluate_captions(run, data=data, split=split, out=out, beam=beam, include_train=include_train)

    def format_metrics(self, metrics: dict) -> str:
        text = "  ".join(f"BLEU-{n} {metrics[f'bleu{n}']:.2f}" for n in range(1, 5))
        text += "".join(f"  {name} {metrics[key]:.1f}" for key, name in (("cider", "CIDEr-D"),)
                        if key in metrics)
        if "attribute_match" in metrics:
            text += f"  attribute match {100 * metrics['attribute_match']:.1f}%"
        from pixelforge.tasks.common.held_out import left_out_note

        return text + f"  ({metrics['num_images']} images)" + left_out_note(metrics)

    def score_files(self, gt, predictions, **options) -> dict:
        from pixelforge.tasks.caption.evaluate import score_result_files

        self.reject_options("evaluate --gt/--predictions", options)
        return score_result_files(gt, predictions)

    def predict(self, run, paths, *, out=None, beam=None, **options):
        from pixelforge.tasks.caption.inference import predict_captions

        self.reject_options("predict", options)
        return predict_captions(run, paths, beam)

    def describe_prediction(self, result: dict) -> str:
        return result.get("error") or f"{result['caption']}  (log p {result['score']:.3f})"

    def card_facts(self, run, cfg, summary):
        from pixelforge.tasks.caption.card import card_facts

        return card_facts(run, cfg, summary)

    def export(self, run, out, **options):
        from pixelforge.tasks.caption.export import export_package

        return export_package(run, out, **options)

    def explain_images(self, run, images, out, **options):
        from pixelforge.tasks.caption.explain import explain_captions

        return explain_captions(run, images, out, **options)
