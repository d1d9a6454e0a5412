"""The classical denoisers a user would otherwise pick, from scikit-image, measured beside ours on the same images.

    nl_means  non-local means (Buades et al. 2005), `denoise_nl_means` with the noise level from `estimate_sigma`
              and scikit-image's documented settings (h = 0.8 sigma, 5x5 patches, 13x13 search, fast mode)
    wavelet   wavelet shrinkage (`denoise_wavelet`, BayesShrink, soft thresholds, colour through YCbCr), its own
              noise estimate

Both estimate the noise from the noisy image alone, as a user without the clean one would: neither is told the
true sigma. BM3D (Dabov et al. 2007) is measured by benchmarks/denoise_real.py only, where the `bm3d` package is
installed: its licence keeps it out of pixelforge's dependencies.
"""

from __future__ import annotations

import numpy as np

from pixelforge.data.noise import quantize, to_unit

BASELINES = ("nl_means", "wavelet")


def nl_means(noisy: np.ndarray) -> np.ndarray:
    from skimage.restoration import denoise_nl_means, estimate_sigma

    x = to_unit(noisy)
    sigma = float(np.mean(estimate_sigma(x, channel_axis=-1)))
    out = denoise_nl_means(x, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True,
                           channel_axis=-1)
    return quantize(out.reshape(noisy.shape), noisy.dtype)


def wavelet(noisy: np.ndarray) -> np.ndarray:
    from skimage.restoration import denoise_wavelet

    x = to_unit(noisy)
    colour = x.shape[-1] == 3
    out = denoise_wavelet(x, channel_axis=-1, convert2ycbcr=colour, method="BayesShrink", mode="soft",
                          rescale_sigma=True)
    return quantize(out.reshape(noisy.shape), noisy.dtype)


MIN_SIDE = 8  # smaller, the noise cannot be estimated (scikit-image warns and returns NaN sigmas)


def run_baseline(name: str, noisy: np.ndarray) -> np.ndarray:
    """`name`'s denoised image; an image under MIN_SIDE px a side is returned as it is (nothing to estimate from)."""
    if min(noisy.shape[:2]) < MIN_SIDE:
        return noisy.copy()
    return {"nl_means": nl_means, "wavelet": wavelet}[name](noisy)
