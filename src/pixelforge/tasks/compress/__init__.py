"""Learned image compression: CompressAI's factorized prior and scale hyperprior trained for `λ·D + R`, real
`.pfc` files coded with its rANS coder, and rate-distortion curves against JPEG and WebP (`--task compress`)."""

from __future__ import annotations

from pixelforge.tasks.base import (IN_RAM, IN_RAM_WHY, OWN_OPTIMIZERS, OWN_OPTIMIZERS_WHY, WHOLE_NETWORK,
                                   WHOLE_NETWORK_WHY, Task)
from pixelforge.tasks.common.card_hook import CardFromFacts
from pixelforge.tasks.compress.config import CompressConfig
from pixelforge.tasks.registry import register_task


@register_task
class CompressTask(CardFromFacts, Task):
    name = "compress"
    config_class = CompressConfig
    description = "learned image compression (any folder of photos): .pfc files, bpp vs PSNR against JPEG/WebP"
    reads_photo_folder = True
    # CompressAI's recipe (Adam 1e-4, clip 1.0) on 128 px crops; the lr is constant, as in its examples.
    defaults = {"img_size": 128, "epochs": 20, "batch_size": 8, "lr": 1e-4, "schedule": "constant", "warmup_epochs": 0,
                "grad_clip": 1.0, "precision": "32", "val_fraction": 0.1}  # and `fixed`
    data_kind = "images"
    # CompressAI's models from scratch, trained whole by Adam (no weight decay; step.py) on random crops; images split
    # into train and val only.
    fixed = {"weights": "none", "strategy": "full", "optimizer": "adamw", "augment": "light", "test_fraction": 0.0,
             **WHOLE_NETWORK, **OWN_OPTIMIZERS, "weight_decay": 0.0, "augment_options": None, **IN_RAM,
             "channels_last": False}
    fixed_why = {**WHOLE_NETWORK_WHY, **OWN_OPTIMIZERS_WHY, **IN_RAM_WHY, **dict.fromkeys(
        ["augment", "augment_options"], "its own random crops and horizontal flips; --crops-per-image")}
    monitor = "val_loss"
    monitor_mode = "min"
    monitor_label = "val loss (λ·255²·MSE + bpp)"

    def run_name(self, cfg) -> str:
        return f"compress-{cfg.model}-l{cfg.lambda_:g}"

    def check_config(self, cfg) -> None:
        from pixelforge.tasks.compress.task import check_config

        check_config(cfg)

    def prepare_data(self, cfg) -> tuple:
        from pixelforge.tasks.compress.task import prepare_data

        return prepare_data(cfg)

    def build_setup(self, cfg, source, classes, fabric, progress):
        from pixelforge.tasks.compress.task import build_setup

        return build_setup(cfg, source, classes, fabric, progress)

    def predict(self, run, paths, *, out=None, **options):
        from pixelforge.errors import PixelforgeError

        # was "predict: not available for task 'compress'": its package predicts, and the run codes with `compress`
        raise PixelforgeError(f"{run}: a compression run codes one image with `pixelforge compress {run} IMAGE --out "
                              f"FILE.pfc`; to code many, export it (`pixelforge export {run} --out PACKAGE`) and "
                              f"predict with the package")

    def card_facts(self, run, cfg, summary):
        from pixelforge.tasks.compress.card import card_facts

        return card_facts(run, cfg, summary)

    def export(self, run, out, **options):
        from pixelforge.tasks.compress.export import export_package

        return export_package(run, out, **options)

    def write_report(self, run):
        from pixelforge.tasks.compress.report import write_compression_report

        return write_compression_report(run)

    def evaluate(self, run, *, data=None, split=None, out=None, compare=None, refine=None, refine_lr=None,
                 include_train=False, **options):
        from pixelforge.tasks.compress.evaluate import evaluate_compression

        self.reject_options("evaluate", options)
        return evaluate_compression(run, data=data, split=split, out=out, compare=compare, refine=refine or 0,
                                    refine_lr=refine_lr, include_train=include_train)

    def format_metrics(self, metrics: dict) -> str:
        def number(key, fmt, source=metrics):
            value = source.get(key)
            return "n/a" if value is None else format(value, fmt)

        def bd_rate(codec, source=metrics):  # "n/a%" alone did not say why
            value, reason = source.get(f"bd_rate_vs_{codec}"), source.get(f"bd_rate_vs_{codec}_na_reason")
            return f"{value:+.1f}%" if value is not None else f"n/a ({reason or 'no reason recorded'})"

        from pixelforge.metrics.image_quality import MS_SSIM_MIN_SIDE
        from pixelforge.tasks.common.held_out import left_out_note

        # MS-SSIM's five scales need images of MS_SSIM_MIN_SIDE px a side: say so rather than a bare "n/a"
        ms_ssim = number("ms_ssim", ".4f")
        if metrics.get("ms_ssim") is None:
            ms_ssim += f" (needs images of at least {MS_SSIM_MIN_SIDE} px a side)"
        refined = f" ({metrics['refine_steps']} refinement steps)" if metrics.get("refine_steps") else ""
        line = (f"{metrics['model']} λ={metrics['lambda']:g}{refined} on {metrics['num_images']} images: "
                f"{number('bpp', '.4f')} bpp (file; estimate {number('bpp_estimated', '.4f')}), "
                f"PSNR {number('psnr', '.2f')} dB, MS-SSIM {ms_ssim} | at the same bpp: "
                f"JPEG {number('jpeg_psnr_at_bpp', '.2f')} dB, WebP {number('webp_psnr_at_bpp', '.2f')} dB | "
                f"BD-rate vs JPEG {bd_rate('jpeg')}, vs WebP {bd_rate('webp')} | "
                f"encode {number('encode_cpu_s', '.2f')} CPU-s, decode {number('decode_cpu_s', '.2f')} CPU-s per image"
                + left_out_note(metrics))
        plain = metrics.get("unrefined")
        if plain:
            line += (f"\nwithout refinement: {number('bpp', '.4f', plain)} bpp, PSNR {number('psnr', '.2f', plain)} dB "
                     f"(JPEG {number('jpeg_psnr_at_bpp', '.2f', plain)} dB at that bpp), BD-rate vs JPEG "
                     f"{bd_rate('jpeg', plain)}, encode {number('encode_cpu_s', '.2f', plain)} CPU-s")
        return line
