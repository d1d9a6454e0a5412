"""Image denoising: a DnCNN-style CNN or a U-Net on a pretrained encoder, beside classical denoisers
(`--task denoise`)."""

from __future__ import annotations

from pathlib import Path

from pixelforge.errors import PixelforgeError
from pixelforge.tasks.base import IN_RAM, IN_RAM_WHY, WHOLE_NETWORK, WHOLE_NETWORK_WHY, Task
from pixelforge.tasks.common.card_hook import CardFromFacts
from pixelforge.tasks.denoise.config import DenoiseConfig
from pixelforge.tasks.registry import register_task


@register_task
class DenoiseTask(CardFromFacts, Task):
    name = "denoise"
    predict_output = "output"
    config_class = DenoiseConfig
    description = "noisy image -> clean image: any folder of clean photos (noise added on the fly) or noisy/ + clean/"
    reads_photo_folder = True
    # DnCNN, 8 layers of 32 channels at full resolution, Adam at 1e-3 on 64 px crops of hymenoptera/train: the
    # 12 x 64 / pixel-unshuffled recipe before it did not learn at that rate (docs/denoising.md, "Status").
    defaults = {"model": "dncnn", "img_size": 64, "epochs": 12, "batch_size": 16, "strategy": "full", "lr": 1e-3,
                "warmup_epochs": 0.2}
    # Trained whole at one rate (--strategy full, checked below), without weight decay: it would pull the residual
    # toward zero noise, i.e. toward returning the noisy input (task.py). Its augmentation is its own (data.py).
    fixed = {**WHOLE_NETWORK, "weight_decay": 0.0, "augment": "light", "augment_options": None, **IN_RAM}
    fixed_why = {**WHOLE_NETWORK_WHY, **IN_RAM_WHY, **dict.fromkeys(
        ["augment", "augment_options"], "its own random crops, flips and 90-degree rotations; --crops-per-image")}
    monitor = "val_psnr"
    monitor_mode = "max"
    monitor_label = "val PSNR (dB)"

    def check_config(self, cfg) -> None:
        from pixelforge.tasks.denoise.models import MODELS

        if cfg.model not in MODELS:
            raise PixelforgeError(f"--model {cfg.model!r}: denoising models are {', '.join(MODELS)} "
                                  f"(the U-Net's encoder is --encoder)")
        if cfg.strategy != "full":
            raise PixelforgeError(f"--strategy {cfg.strategy}: denoisers train whole (--strategy full)")
        if cfg.model == "dncnn" and cfg.weights not in ("imagenet", "none"):
            raise PixelforgeError(f"--weights {cfg.weights}: dncnn trains from scratch; pretrained weights are for "
                                  f"--model unet's encoder")

    def run_name(self, cfg) -> str:
        return f"denoise-{cfg.model}-{Path(cfg.data).stem}"

    def prepare_data(self, cfg) -> tuple:
        from pixelforge.tasks.denoise.task import prepare_data

        return prepare_data(cfg)

    def build_setup(self, cfg, source, classes, fabric, progress):
        from pixelforge.tasks.denoise.task import build_setup

        return build_setup(cfg, source, classes, fabric, progress)

    def write_report(self, run):
        from pixelforge.tasks.denoise.report import write_denoising_report

        return write_denoising_report(run)

    def evaluate(self, run, *, data=None, split=None, out=None, include_train=False, **options):
        from pixelforge.tasks.denoise.evaluate import evaluate_denoising

        self.reject_options("evaluate", options)
        return evaluate_denoising(run, data=data, split=split, out=out, include_train=include_train)

    def format_metrics(self, metrics: dict) -> str:
        from pixelforge.tasks.common.held_out import left_out_note

        def ssim(value) -> str:  # None when every image was under SSIM's 6 px (metrics/image_quality.py)
            return "n/a" if value is None else f"{value:.4f}"

        line = (f"{metrics['split']}: {metrics['num_images']} images  PSNR {metrics['psnr']:.2f} dB  "
                f"SSIM {ssim(metrics['ssim'])}  (noisy {metrics['psnr_noisy']:.2f} dB)" + left_out_note(metrics))
        others = [f"  {name:10s} PSNR {b['psnr']:.2f} dB  SSIM {ssim(b['ssim'])}" for name, b in metrics["baselines"].items()]
        return "\n".join([line, *others])

    def predict(self, run, paths, *, out=None, **options):
        from pixelforge.tasks.denoise.evaluate import predict_denoising

        self.reject_options("predict", options)
        return predict_denoising(run, paths, out)

    def describe_prediction(self, result: dict) -> str:
        from pixelforge.deploy.runtime.denoise import DenoiseRuntime

        return DenoiseRuntime.describe_result(result)

    def card_facts(self, run, cfg, summary):
        from pixelforge.tasks.denoise.card import card_facts

        return card_facts(run, cfg, summary)

    def export(self, run, out, **options):
        from pixelforge.tasks.denoise.export import export_package

        return export_package(run, out, **options)
