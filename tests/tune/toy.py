"""A seconds-fast task for the tuning tests (test_plugin_task's brightness regressor, "lower is better"), the
images it learns from, and a worker entry point: `python -m tests.tune.toy tune ...` is `pixelforge tune` with the
toy task registered, as a second worker process would run it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from tests.test_plugin_task import BrightnessTask


def register() -> None:
    from pixelforge.tasks.registry import TASKS, register_task

    if BrightnessTask.name not in TASKS:
        register_task(BrightnessTask)


def make_study_files(folder: Path, epochs: int = 3, space: str | None = None) -> tuple[Path, Path]:
    """48 gray 8x8 images, a base config for the toy task and a two-key space; returns (config, space)."""
    images = folder / "gray"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(48):
        pixels = np.clip(rng.normal(rng.uniform(20, 235), 20, (8, 8)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"{i:02d}.png")
    config, space_file = folder / "base.yaml", folder / "space.yaml"
    config.write_text(yaml.safe_dump({"task": BrightnessTask.name, "data": str(images), "epochs": epochs,
                                      "batch_size": 16, "quiet": True}))
    space_file.write_text(space or "lr: {low: 1.0e-4, high: 0.1, log: true}\nhidden: [2, 8, 32]\n")
    return config, space_file


if __name__ == "__main__":
    register()
    from pixelforge.cli import main

    sys.argv[0] = "pixelforge"
    main()
