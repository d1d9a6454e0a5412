"""Neural style transfer (`--task style`): fast feed-forward networks (Johnson et al. 2016) trained with the
perceptual loss of a frozen ImageNet CNN; `pixelforge stylize` also offers optimisation (Gatys et al.) and
arbitrary styles (Magenta's networks). See docs/style-transfer.md."""

from __future__ import annotations

from pixelforge.tasks.registry import register_task
from pixelforge.tasks.base import IN_RAM, IN_RAM_WHY, WHOLE_NETWORK, WHOLE_NETWORK_WHY, Task
from pixelforge.tasks.common.card_hook import CardFromFacts
from pixelforge.tasks.style.config import StyleConfig


@register_task
class StyleTask(CardFromFacts, Task):
    name = "style"
    predict_output = "stylized"
    config_class = StyleConfig
    description = "fast style transfer: a folder of content photos + --style IMAGE"
    reads_photo_folder = True
    # The measured run in docs/style-transfer.md: 256 px crops cut from photos at 384 px (content_size; at equal
    # CPU time they beat 128 px crops on 512 px photos), Lite0 loss network, content/style/TV weights 1/3/0.01
    # (style 10, the comparison's, scored the same on c + 10 s but collapsed to a three-colour poster), the two
    # deepest style layers 3x (config), 28 epochs (1568 steps, 2283 CPU seconds on two threads: ~19 quiet minutes on
    # 2 cores, within the 20; 9 % lower validation loss than 14) with a cosine schedule. In bf16 (`auto` on a
    # CPU with native BF16) the same run took 1656 CPU seconds (14.3 idle minutes) for the same test-photo losses.
    defaults = {"img_size": 256, "epochs": 28, "batch_size": 4, "lr": 2e-3, "warmup_epochs": 0.2,
                "val_fraction": 0.1}  # and `fixed`
    monitor, monitor_mode, monitor_label = "val_loss", "min", "val perceptual loss"
    # Its own transformer network from scratch, trained whole at one rate without weight decay (the loss network is
    # --loss-net); photos are split into train and val only.
    fixed = {"model": "tf_efficientnet_lite0", "weights": "none", "strategy": "full", "augment": "none",
             "test_fraction": 0.0, **WHOLE_NETWORK, "weight_decay": 0.0, "augment_options": None, **IN_RAM,
             "channels_last": False}
    fixed_why = {**WHOLE_NETWORK_WHY, **IN_RAM_WHY, **dict.fromkeys(
        ["augment", "augment_options"], "its own random crops and horizontal flips of the photos")}
    data_kind = "images"
    # The default run in bf16, depthwise convolutions and Gram matrices in fp32 (task.py, lossnet.py): 1.38x less CPU,
    # best val loss 0.3904 against fp32's 0.3927, fast / Gatys 2.49x against 2.51x on the test photos
    # (docs/style-transfer.md, "bf16 training").
    bf16_measured = True

    def check_config(self, cfg) -> None:
        from pixelforge.errors import PixelforgeError

        if cfg.img_size % 4:
            raise PixelforgeError(f"--img-size {cfg.img_size}: style training needs a multiple of 4")

    def trained_name(self, cfg) -> str:
        # cfg.model is the frozen loss network; what trains is the feed-forward transformer
        return (f"a style transformer ({cfg.width} channels, {cfg.residual_blocks} residual blocks; loss network "
                f"{cfg.model})")

    def run_name(self, cfg) -> str:
        from pathlib import Path

        return f"style-{Path(cfg.style).stem}-{Path(cfg.data).stem}"

    def prepare_data(self, cfg):
        from pixelforge.tasks.style.task import prepare_data

        return prepare_data(cfg)

    def build_setup(self, cfg, source, classes, fabric, progress):
        from pixelforge.tasks.style.task import build_setup

        return build_setup(cfg, source, classes, fabric, progress)

    def write_report(self, run):
        from pixelforge.tasks.style.report import write_style_report

        return write_style_report(run)

    def predict(self, run, paths, *, out=None, **options):
        from pixelforge.tasks.style.apply import predict_files

        self.reject_options("predict", options)
        return predict_files(run, paths, out)

    def card_facts(self, run, cfg, summary):
        from pixelforge.tasks.style.card import card_facts

        return card_facts(run, cfg, summary)

    def export(self, run, out, **options):
        from pixelforge.tasks.style.export import export_package

        return export_package(run, out, **options)
