"""The two CompressAI models (Ballé et al. 2017, "End-to-end optimized image compression"; Ballé et al. 2018,
"Variational image compression with a scale hyperprior"), built from a run's config.

CompressAI's layers (GDN), entropy models (EntropyBottleneck, GaussianConditional) and its rANS coder are used as
they are; pixelforge only wires them to its engine, its file format and its package.
"""

from __future__ import annotations

import warnings

from pixelforge.errors import PixelforgeError


def compressai_models():
    """CompressAI's model classes; importing it says plainly what is missing (it needs torch-geometric and einops)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script deprecation inside compressai
            from compressai.models import FactorizedPrior, ScaleHyperprior
    except ImportError as exc:
        raise PixelforgeError(f"--task compress needs CompressAI: {exc} (pip install 'pixelforge[compress]', "
                              f"see docs/compression.md)") from None
    return {"factorized": FactorizedPrior, "hyperprior": ScaleHyperprior}


def build_model(cfg):
    """A fresh model of `cfg.model` with `cfg.channels_n` / `cfg.channels_m` channels."""
    cls = compressai_models()[cfg.model]
    return cls(cfg.channels_n, cfg.channels_m)


def downsampling(model_name: str) -> int:
    """The input's sides must be multiples of this: y is 1/16 of the image, z (hyperprior) 1/64."""
    return 64 if model_name == "hyperprior" else 16
