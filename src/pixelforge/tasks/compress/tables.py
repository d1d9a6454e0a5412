"""A trained run's codec: its CompressAI model from best.ckpt and its CDF tables, frozen once into RUN/codec.npz.

CompressAI's `update()` computes the integer CDF tables from the float entropy models; doing that again on
another machine (or another torch) can give different integers and so wrong decodes. Here it runs once per run,
the integers are stored (atomically) and from then on every encoder and decoder of this run, and its package,
reads the stored tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pixelforge.deploy.runtime.learned_codec import FrozenCodec, Transforms
from pixelforge.deploy.runtime.rans import CdfTables
from pixelforge.runs.folder import atomic_write_bytes
from pixelforge.tasks.common.run import read_run
from pixelforge.tasks.compress.models import build_model

CODEC_FILE = "codec.npz"


def freeze_tables(model) -> FrozenCodec:
    """The model's entropy parameters as a `FrozenCodec` (CompressAI's `update(force=True)`, then its buffers)."""
    model.update(force=True)
    eb = model.entropy_bottleneck
    bottleneck = CdfTables(eb._quantized_cdf.numpy().astype(np.int32), eb._cdf_length.numpy().astype(np.int32),
                           eb._offset.numpy().astype(np.int32))
    medians = eb.quantiles[:, 0, 1].detach().numpy().astype(np.float32)
    if not hasattr(model, "gaussian_conditional"):
        return FrozenCodec("factorized", bottleneck, medians)
    gc = model.gaussian_conditional
    conditional = CdfTables(gc._quantized_cdf.numpy().astype(np.int32), gc._cdf_length.numpy().astype(np.int32),
                            gc._offset.numpy().astype(np.int32))
    return FrozenCodec("hyperprior", bottleneck, medians, conditional, gc.scale_table.numpy().astype(np.float32),
                       float(gc.lower_bound_scale.bound))


def load_trained(run_dir: str | Path):
    """(run folder, config, eval-mode model, frozen codec) of a compression run; freezes the tables on first use."""
    run, cfg, _, checkpoint = read_run(run_dir, "compress")
    model = build_model(cfg)
    model.load_state_dict(checkpoint["model"])  # CompressAI's load_state_dict resizes its CDF buffers
    model.eval()
    path = run / CODEC_FILE
    if not path.exists():
        codec = freeze_tables(model)
        atomic_write_bytes(path, lambda f: np.savez(f, **codec.arrays()))
    return run, cfg, model, FrozenCodec.load(path)


def torch_transforms(model) -> Transforms:
    """The model's transforms as numpy -> numpy functions (for learned_codec's encoder and decoder)."""
    def wrap(module, absolute: bool = False):
        @torch.no_grad()
        def run(x: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(x)
            return module(t.abs() if absolute else t).numpy()
        return run

    if hasattr(model, "h_a"):
        return Transforms(wrap(model.g_a), wrap(model.g_s), wrap(model.h_a, absolute=True), wrap(model.h_s))
    return Transforms(wrap(model.g_a), wrap(model.g_s))
