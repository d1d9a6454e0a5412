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


def spatial_layers(module) -> tuple | None:
    """(kernel, stride, padding, transposed) of each convolution of a transform, for tiling it (codec_tiles.py);
    None when a layer's reach is unknown (square kernels and GDN/ReLU between them are what the models use), so
    such a transform runs on the whole image."""
    from compressai.layers import GDN

    layers = []
    for layer in module.children() if isinstance(module, torch.nn.Sequential) else [module]:
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            square = len(set(layer.kernel_size)) == len(set(layer.stride)) == len(set(layer.padding)) == 1
            if not square or layer.dilation != (1, 1):
                return None
            layers.append((layer.kernel_size[0], layer.stride[0], layer.padding[0],
                           isinstance(layer, torch.nn.ConvTranspose2d)))
        elif not isinstance(layer, (GDN, torch.nn.ReLU)):
            return None
    return tuple(layers)


def torch_transforms(model) -> Transforms:
    """The model's transforms as numpy -> numpy functions (for learned_codec's encoder and decoder)."""
    def wrap(module, absolute: bool = False):
        @torch.no_grad()
        def run(x: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(x)
            return module(t.abs() if absolute else t).numpy()
        return run

    layers = {"g_a_layers": spatial_layers(model.g_a), "g_s_layers": spatial_layers(model.g_s)}
    if hasattr(model, "h_a"):
        return Transforms(wrap(model.g_a), wrap(model.g_s), wrap(model.h_a, absolute=True), wrap(model.h_s), **layers)
    return Transforms(wrap(model.g_a), wrap(model.g_s), **layers)
