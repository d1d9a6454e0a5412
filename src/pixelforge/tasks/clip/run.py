"""A trained `--task clip` run as a `ZeroShotModel`: the checkpoint's open_clip model, the run's word tokenizer,
open_clip's inference transform at the run's size and the run's prompt templates."""

from __future__ import annotations

from pathlib import Path

import torch

from pixelforge.data.captions.tokenizer import Tokenizer
from pixelforge.models.zeroshot import ZeroShotModel


def preprocessor(backbone: str, img_size: int):
    """(open_clip's inference transform: resize the short side, centre crop, normalise; mean; std) with the
    backbone's ImageNet statistics."""
    from pixelforge.models.clip import open_clip
    from pixelforge.models.registry import get_spec

    spec = get_spec(backbone)
    return open_clip.image_transform(img_size, is_train=False, mean=spec.mean, std=spec.std), spec.mean, spec.std


def encode_captions(tokenizer: Tokenizer, captions: list[str], length: int) -> torch.Tensor:
    """[N, length] ids (<start> words <end>, <pad> after); words beyond length - 2 are cut."""
    out = torch.full((len(captions), length), tokenizer.pad, dtype=torch.long)
    for row, text in enumerate(captions):
        ids = tokenizer.encode(text, length - 2)
        out[row, :len(ids)] = torch.tensor(ids)
    return out


def token_function(tokenizer: Tokenizer, length: int):
    """texts -> [N, length] ids, open_clip's tokenizer interface over our word tokenizer."""

    return lambda texts: encode_captions(tokenizer, [texts] if isinstance(texts, str) else list(texts), length)


def load_clip_run(run_dir: str | Path, checkpoint: str = "best.ckpt") -> tuple[ZeroShotModel, object]:
    """(the run's ZeroShotModel, its config)."""
    from pixelforge.models.clip import PixelCLIP
    from pixelforge.runs import folder as rd
    from pixelforge.tasks.config import load_config

    run_dir = rd.require_run(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    state = rd.load_checkpoint(rd.trained_checkpoint(run_dir, checkpoint))
    model = PixelCLIP(**state["model_cfg"])
    model.load_state_dict(state["model"])
    model.eval()
    tokenizer = Tokenizer(state["vocab"], state.get("min_count", 1))
    preprocess, _, _ = preprocessor(cfg.model, cfg.img_size)
    length = state["model_cfg"]["text_cfg"]["context_length"]
    return ZeroShotModel(model, token_function(tokenizer, length), preprocess, list(state["templates"]),
                         f"run {run_dir}", tokenizer=tokenizer), cfg
