"""Image classification: fine-tuning a pretrained CNN on class folders or a CSV (`--task classify`, the default)."""

from __future__ import annotations

from pathlib import Path

from pixelforge.errors import PixelforgeError
from pixelforge.tasks.base import Task
from pixelforge.tasks.registry import register_task
from pixelforge.tasks.classify.config import ClassifyConfig


@register_task
class ClassifyTask(Task):
    name = "classify"
    config_class = ClassifyConfig
    description = "one label per image: class folders, a CSV, or built-in digits/shapes"
    defaults: dict = {}
    monitor = "val_acc"
    fine_tunes = True  # --strategy linear | full | gradual on the backbone
    monitor_mode = "max"
    monitor_label = "val accuracy"
    heat_maps = True  # `pixelforge explain`: Grad-CAM and the other class heat maps
    bf16_measured = True  # L6 / B2 in docs/performance.md
    # The linear path's validation features from build_setup, for calibration and the report in the same process
    # (inference.CachedFeatures): a second pass of the frozen backbone over the same images would give the same.
    cached_val = None

    def check_dataset(self, path, **options):
        from pixelforge.data.check import check_dataset

        return check_dataset(path, img_size=options.get("img_size"))  # the mask options do not apply here

    def print_check(self, report) -> None:
        from pixelforge.data.check import print_report

        print_report(report)

    def write_preview(self, path, out, augment, img_size, count):
        from pixelforge.viz.preview import write_preview

        return write_preview(path, out, augment, img_size, count)

    def check_config(self, cfg) -> None:
        from pixelforge.models.registry import check_img_size, check_weights_option

        check_mixing(cfg)  # the config alone; the parent run is read next
        if cfg.continue_from:  # the parent's model and size first: another --model's size rule hid that mistake
            from pixelforge.tasks.classify.continual.lineage import parent_run

            parent_run(cfg)
        check_img_size(cfg.model, cfg.img_size)
        check_weights_option(cfg.weights)
        warn_random_frozen_backbone(cfg)

    def prepare_data(self, cfg) -> tuple:
        from pixelforge.tasks.classify.data import prepare_data

        return prepare_data(cfg)

    def start_decoding(self, cfg, source) -> None:
        # A continual step decodes its replayed images its own way (continual/); DDP's processes each decode theirs.
        if cfg.continue_from or cfg.devices * cfg.num_nodes > 1:
            return
        from pixelforge.data import prefetch
        from pixelforge.data.images import decode_size
        from pixelforge.models.registry import get_spec

        # What task.py's _decoded_datasets will ask for: the train and val images at the backbone's decode size.
        paths = [s.path for s in (*source.split("train"), *source.split("val"))]
        prefetch.start(paths, decode_size(cfg.img_size, get_spec(cfg.model).crop_pct), cfg.ram_budget_gb * 1e9)

    def check_data(self, cfg, source) -> None:
        from pixelforge.tasks.classify.balance import check_balance

        check_balance(cfg, source.split("train"))

    def build_setup(self, cfg, source, classes, fabric, progress):
        self.cached_val = None  # never a previous run's features (one process trains many: tune, benchmarks)
        if cfg.continue_from:  # continual/ builds on task.py's pieces, so it is chosen here, above both
            from pixelforge.tasks.classify.continual.setup import build_continual_setup

            return build_continual_setup(cfg, source, classes, fabric, progress)
        from pixelforge.tasks.classify.features import FeatureDataset
        from pixelforge.tasks.classify.inference import CachedFeatures
        from pixelforge.tasks.classify.task import build_setup

        setup = build_setup(cfg, source, classes, fabric, progress)
        val = setup.val_data
        self.cached_val = (CachedFeatures([s.path for s in val.samples], val.features[0])
                           if isinstance(val, FeatureDataset) and val.samples is not None else None)
        return setup

    def bf16_reason(self, cfg) -> str | None:
        if caches_features(cfg):
            return "auto: the linear strategy trains its head on cached fp32 features"
        return None

    def unread(self, cfg) -> dict[str, str]:
        when = super().unread(cfg)
        if cfg.continue_from:  # continual/setup.py: a step always runs the backbone, frozen or not; nothing is cached
            when["cache_features"] = "in a first run with --strategy linear (a continual step trains end to end)"
        return when

    def bf16_probe_model(self, cfg, num_classes: int):
        from functools import partial

        from pixelforge.models.classifier import build_classifier

        return partial(build_classifier, cfg.model, num_classes, "none", cfg.dropout)

    def val_batch_size(self, cfg) -> int:
        return max(cfg.batch_size, 64)  # inference only: larger batches are cheaper per image

    def run_name(self, cfg) -> str:
        return f"{cfg.model}-{Path(cfg.data).stem}"

    def write_card(self, run: Path, peak_memory: dict | None = None) -> Path:
        from pixelforge.tasks.classify.card import write_model_card

        return write_model_card(run, peak_memory=peak_memory)

    def after_fit(self, run, cfg, progress) -> None:
        if cfg.continue_from:
            from pixelforge.tasks.classify.continual.sequence import finish_step

            progress.info(finish_step(run, cfg))
        if not cfg.calibrate or cfg.train_on_val:  # a temperature fitted on training images would be overconfident
            return
        from pixelforge.tasks.classify.calibration import calibrate_run

        fitted = calibrate_run(run, cached=self.cached_val)
        if "skipped" in fitted:
            progress.info(f"calibration skipped: {fitted['skipped']}")
        else:
            progress.info(f"calibration: temperature {fitted['temperature']:.3f} fitted on {fitted['images']} val "
                          f"images, ECE {fitted['ece_before']:.4f} -> {fitted['ece_after']:.4f}")

    def write_report(self, run):
        from pixelforge.tasks.classify.report import write_run_report

        return write_run_report(run, cached=self.cached_val)

    def evaluate(self, run, *, data=None, split=None, out=None, groups=None, compare=None, include_train=False,
                 **options):
        from pixelforge.tasks.classify.evaluate import evaluate

        self.reject_options("evaluate", options)
        return evaluate(run, data=data, split=split, out=out, groups=groups, compare=compare,
                        include_train=include_train)

    def format_metrics(self, m: dict) -> str:
        from pixelforge.tasks.common.held_out import left_out_note

        lines = [f"{m['split']}: {m['num_images']} images  accuracy {m['accuracy']:.4f}  macro F1 {m['macro_f1']:.4f}  "
                 f"ECE {m['ece']:.4f}" + (f"  top-5 {m['top5_accuracy']:.4f}" if m["top5_accuracy"] is not None else "")
                 + left_out_note(m)]
        for name, row in m["per_class"].items():
            lines.append(f"  {name:20s} precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
                         f"F1 {row['f1']:.3f}  support {row['support']}")
        if "continual" in m:  # a continual step: the sequence so far (tasks/classify/continual/sequence.py)
            c = m["continual"]
            lines.append(f"continual ({c['strategy']}, {len(c['accuracy_matrix'])} tasks): average accuracy "
                         f"{c['avg_accuracy']:.4f}  BWT {c['bwt'] or 0:+.4f}  forgetting {c['forgetting'] or 0:.4f}")
        if "groups" in m:
            from pixelforge.metrics.fairness import format_groups

            lines.append(format_groups(m["groups"]))
        return "\n".join(lines)

    def predict(self, run, paths, *, out=None, top_k: int = 1, **options) -> list[dict]:
        from pixelforge.tasks.classify.predict import predict

        self.reject_options("predict", options)
        return predict(run, paths, top_k=top_k)

    def describe_prediction(self, result: dict) -> str:
        ranked = "  ".join(f"{t['label']} {t['score']:.3f}" for t in result.get("top_k", []))
        return ranked or result.get("error") or ""

    def export(self, run, out, **options):
        from pixelforge.tasks.classify.export import export_package

        return export_package(run, out, **options)


def caches_features(cfg) -> bool:
    """Whether the head trains on cached backbone features (task.py): a first, single-process linear run only."""
    return (cfg.strategy == "linear" and cfg.cache_features is not False and cfg.devices * cfg.num_nodes == 1
            and not cfg.continue_from)


def check_mixing(cfg) -> None:
    """MixUp/CutMix knobs set where nothing is mixed (task.py's batch mixer is only on the end-to-end path of a first
    run) are refused; a preset's (strong) are left to it, as the rest of the preset applies."""
    given = cfg.augment_options.model_dump(include={"mixup_alpha", "cutmix_alpha"}) if cfg.augment_options else {}
    mixing = [(key, value) for key, value in given.items() if value]
    if not mixing:
        return
    where = f"augment_options.{mixing[0][0]} {mixing[0][1]}: --task classify"
    if cfg.continue_from:
        raise PixelforgeError(f"{where} does not mix images in a continual step (--continue-from); leave it out")
    if caches_features(cfg):
        raise PixelforgeError(f"{where} does not mix images when --strategy linear trains the head on cached "
                              f"features; set cache_features: false or --strategy full, or leave it out")


def warn_random_frozen_backbone(cfg) -> None:
    """One warning line when `--strategy linear` (the default) would train a head on a backbone that starts random:
    it stays frozen, so the run ends near chance and looks like a bug. Not refused: random features under a linear
    head are a baseline some users want; fastai unfreezes a model built without pretrained weights, which is what
    the warning suggests."""
    import logging

    from pixelforge.models.registry import get_spec

    if cfg.strategy != "linear" or cfg.continue_from:  # a continual step starts from its parent's trained backbone
        return
    weights_from = get_spec(cfg.model).weights_from
    if cfg.weights == "none" or weights_from.startswith("none"):
        why = "--weights none" if cfg.weights == "none" else f"{cfg.model} has no pretrained weights"
        logging.getLogger("pixelforge").warning(
            f"warning: --strategy linear trains only a head on a frozen backbone, and {cfg.model}'s starts random "
            f"({why}): expect near-chance accuracy; add --strategy full to train the whole network")


from pixelforge.tasks.classify import fewshot  # noqa: E402,F401  (registers --task fewshot, built on this task)
