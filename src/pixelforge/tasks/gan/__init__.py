"""Image generation with GANs: class-conditional DCGAN with spectral norm, EMA generator, FID/KID with a named
extractor and the real-vs-real floor (`--task gan`)."""

from __future__ import annotations

from pixelforge.tasks.base import (IN_MEMORY_BATCHES, IN_MEMORY_BATCHES_WHY, IN_RAM, IN_RAM_WHY, OWN_OPTIMIZERS,
                                   OWN_OPTIMIZERS_WHY, WHOLE_NETWORK, WHOLE_NETWORK_WHY, Task)
from pixelforge.tasks.common.card_hook import CardFromFacts
from pixelforge.tasks.gan.config import GanConfig
from pixelforge.tasks.registry import register_task


@register_task
class GanTask(CardFromFacts, Task):
    name = "gan"
    config_class = GanConfig
    description = ("generate new images: class folders, a plain folder of images, or built-in digits|shapes (DCGAN, "
                   "conditional with --conditional)")
    # Conditional DCGAN on digits at 32 px: see docs/gan.md for the measured FID, accuracy and time.
    defaults = {"img_size": 32, "epochs": 60, "batch_size": 32, "lr": 2e-4}  # and `fixed`
    # Its own DCGAN, trained whole by two Adams (no weight decay, no gradient clipping; task.py) at a constant rate
    # with DiffAugment (--diffaugment), on every image.
    fixed = {"model": "dcgan", "weights": "none", "strategy": "full", "optimizer": "adamw", "schedule": "constant",
             "warmup_epochs": 0, "augment": "light", "val_fraction": 0.0, "test_fraction": 0.0, **WHOLE_NETWORK,
             **OWN_OPTIMIZERS, "weight_decay": 0.0, "grad_clip": None, "augment_options": None, **IN_RAM,
             **IN_MEMORY_BATCHES, "channels_last": False}
    fixed_why = {**WHOLE_NETWORK_WHY, **OWN_OPTIMIZERS_WHY, **IN_RAM_WHY, **IN_MEMORY_BATCHES_WHY,
                 "grad_clip": "it never clips gradients",
                 **dict.fromkeys(["augment", "augment_options"], "DiffAugment, chosen by --diffaugment")}
    monitor = "val_fid_lite0"
    monitor_mode = "min"
    monitor_label = "val fid_lite0"

    def monitor_of(self, cfg) -> tuple[str, str]:
        """FID with the config's extractor: GANStep's `val_fid_<extractor name>`."""
        from pixelforge.tasks.gan.fid import extractor_class

        return f"val_fid_{extractor_class(cfg.fid_weights).name}", self.monitor_mode

    def check_dataset(self, path, **options):
        """Class folders (or a built-in set) are checked as classification's; a folder of photos as one set."""
        from pixelforge.data.check import check_dataset, check_image_folder
        from pixelforge.errors import PixelforgeError

        try:
            report = check_dataset(path, img_size=options.get("img_size"))
        except PixelforgeError:
            return check_image_folder(path, img_size=options.get("img_size"))
        report.single_class = []  # one class is a GAN's usual case (all faces), not a problem
        return report

    def print_check(self, report) -> None:
        from pixelforge.data.check import print_report

        print_report(report)

    def predict(self, run, paths, *, out=None, **options):
        from pixelforge.errors import PixelforgeError

        raise PixelforgeError(f"{run}: a GAN run generates images, it does not predict them: `pixelforge generate "
                              f"{run} --out DIR`")

    def run_name(self, cfg) -> str:
        from pathlib import Path

        return f"gan-{'cond-' if cfg.conditional else ''}{Path(cfg.data).stem}"

    def check_config(self, cfg) -> None:
        from pixelforge.tasks.gan.setup import check_config

        check_config(cfg)

    def prepare_data(self, cfg) -> tuple:
        from pixelforge.tasks.gan.setup import prepare_data

        return prepare_data(cfg)

    def build_setup(self, cfg, source, classes, fabric, progress):
        from pixelforge.tasks.gan.setup import build_setup

        return build_setup(cfg, source, classes, fabric, progress)

    def write_report(self, run):
        from pixelforge.tasks.gan.report import write_gan_report

        return write_gan_report(run)

    def evaluate(self, run, *, data=None, split=None, out=None, n=None, classifier=None, **options):
        from pixelforge.tasks.gan.evaluate import evaluate_gan

        self.reject_options("evaluate", {**options, "split": split})
        return evaluate_gan(run, data=data, out=out, n=n, classifier=classifier)

    def format_metrics(self, metrics: dict) -> str:
        from pixelforge.tasks.gan.evaluate import format_metrics

        return format_metrics(metrics)

    def generate(self, run, **options):
        from pixelforge.tasks.gan.generate import generate_to_folder

        return generate_to_folder(run, **options)

    def card_facts(self, run, cfg, summary):
        from pixelforge.tasks.gan.card import card_facts

        return card_facts(run, cfg, summary)

    def export(self, run, out, **options):
        from pixelforge.tasks.gan.export import export_package

        return export_package(run, out, **options)
