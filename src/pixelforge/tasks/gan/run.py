"""A trained GAN run read back: config, classes, the EMA generator of its best checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pixelforge.tasks.gan.models import Generator


@dataclass
class GANRun:
    run_dir: Path
    config: object
    classes: list[str]
    generator: Generator  # the EMA generator, eval mode
    channels: int

    @property
    def conditional(self) -> bool:
        return self.generator.num_classes > 0

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim


def load_gan_run(run_dir, checkpoint: str = "best.ckpt") -> GANRun:
    from pixelforge.tasks.common.run import read_run
    from pixelforge.tasks.gan.models import build_gan

    run, cfg, classes, state = read_run(run_dir, "gan", checkpoint)
    # Runs from before --native-size drew at the image size, from before --d-size judged at it, and from before
    # --label-dim had no class embedding.
    model = build_gan(cfg, state["channels"], len(classes), state.get("native_size", cfg.img_size),
                      state.get("judge_size", cfg.img_size), state.get("label_dim", 0))
    # Sampling needs only the EMA generator; the discriminator's layout may differ in runs of earlier versions.
    ema = {k[len("ema."):]: v for k, v in state["model"].items() if k.startswith("ema.")}
    model.ema.load_state_dict(ema)
    return GANRun(run, cfg, classes, model.ema.eval(), state["channels"])


def class_index(run: GANRun, wanted: str | int | None) -> int | None:
    """`--class K`: a class name or index of a conditional run (None: every class in turn)."""
    from pixelforge.errors import PixelforgeError

    if wanted is None:
        return None
    if not run.conditional:
        raise PixelforgeError(f"--class {wanted}: {run.run_dir} is an unconditional GAN (train with --conditional)")
    text = str(wanted)
    if text in run.classes:
        return run.classes.index(text)
    if text.isdigit() and int(text) < len(run.classes):
        return int(text)
    raise PixelforgeError(f"--class {wanted}: not a class of {run.run_dir} ({', '.join(run.classes)})")


def requested_labels(run: GANRun, n: int, wanted: int | None) -> torch.Tensor | None:
    if not run.conditional:
        return None
    if wanted is not None:
        return torch.full((n,), wanted, dtype=torch.long)
    return torch.arange(n) % len(run.classes)
