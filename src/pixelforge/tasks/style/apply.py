"""Applying a trained style run: load its transformer (on a fresh install too) and stylize images in one pass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pixelforge.deploy.runtime.padding import MIN_SIDE
from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd
from pixelforge.tasks.style.transformer import TransformerNet, load_transformer


@dataclass
class StyleRun:
    run_dir: Path
    model: TransformerNet
    config: object  # the run's StyleConfig

    @property
    def img_size(self) -> int:
        return self.config.img_size


STYLE_COPY = "style_image.png"  # the run's copy of its style image (report.write_style_thumbnail)


def style_image_of(run: StyleRun) -> Path | None:
    """The style image a run learnt: the file training read when it is still there (full resolution), else the
    run's copy (`stylize RUN` reported "style_loss": null, and the package held no style, once it was moved)."""
    for path in (Path(run.config.style), run.run_dir / STYLE_COPY):
        if path.is_file():
            return path
    return None


def is_style_run(path: str | Path) -> bool:
    """True for a run folder trained with --task style."""
    from pixelforge.runs.files import run_task_name

    path = Path(path)
    return (path / "config.yaml").is_file() and run_task_name(path) == "style"


def load_style_run(run_dir: str | Path, checkpoint: str = "best.ckpt") -> StyleRun:
    """The run's transformer (best checkpoint) in eval mode, and its config."""
    from pixelforge.tasks.config import load_config

    run = rd.require_run(run_dir)
    cfg = load_config(run / "config.yaml")
    from pixelforge.tasks.style.config import StyleConfig

    if not isinstance(cfg, StyleConfig):
        raise PixelforgeError(f"{run}: a {cfg.task!r} run, not a style-transfer run (train with --task style)")
    path = run / "checkpoints" / checkpoint
    if not path.is_file():
        raise PixelforgeError(f"{path}: no checkpoint; did training finish at least one epoch?")
    state = rd.load_checkpoint(path)
    model = load_transformer(state["model"], state.get("width", cfg.width), state.get("residual_blocks", cfg.residual_blocks))
    return StyleRun(run, model, cfg)


@torch.inference_mode()
def stylize_tensor(model: TransformerNet, content: torch.Tensor) -> torch.Tensor:
    """[1, 3, H, W] in [0, 1] -> the stylized image (reflect-padded to a multiple of 4, at least MIN_SIDE, and cropped
    back)."""
    height, width = content.shape[-2:]
    pad_h, pad_w = (max((-side) % 4, MIN_SIDE - side) for side in (height, width))
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"  # reflection needs the side beyond the pad
    padded = torch.nn.functional.pad(content, (0, pad_w, 0, pad_h), mode=mode) if pad_h or pad_w else content
    return model(padded)[..., :height, :width]


def predict_files(run_dir: str | Path, paths: list, out: str | Path | None = None) -> list[dict]:
    """`pixelforge predict RUN IMAGES`: each image stylized into `out` (default RUN/predictions) as a package stylizes
    it: at its own size, or shrunk to a longer side of `MAX_SIDE` (an export's default `max_side`) when larger."""
    import numpy as np

    from pixelforge.data.images import load_rgb, read_each
    from pixelforge.data.sources import collect_paths, output_stems
    from pixelforge.deploy.runtime.style import MAX_SIDE, shrink_to_max_side
    from pixelforge.tasks.style.images import save_image, to_tensor

    def read_image(path):
        return to_tensor(shrink_to_max_side(np.asarray(load_rgb(path)), MAX_SIDE))

    run = load_style_run(run_dir)
    out = Path(out or run.run_dir / "predictions")
    paths = collect_paths(list(paths))  # folders and glob patterns, as every task's predict takes them
    if not paths:
        raise PixelforgeError("no images found in the paths given")
    target_of = {path: out / f"{stem}_stylized.png" for path, stem in zip(paths, output_stems(paths))}
    results = []
    for path, content in read_each(paths, read_image, results, errors=(PixelforgeError,)):
        target = target_of[path]
        save_image(stylize_tensor(run.model, content), target)
        results.append({"path": str(path), "stylized": str(target), "summary": f"stylized -> {target}"})
    return results
