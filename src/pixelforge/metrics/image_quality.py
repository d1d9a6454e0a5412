"""Image-quality scores of an image against its reference (denoised vs clean, decoded vs original): torchmetrics'
PSNR, SSIM and MS-SSIM, shared by every image-to-image task so they all score alike.

All three on [0, 1] images (data range 1) after rounding to the image's bit depth, as a saved result would be.
SSIM is Wang et al. 2004 with torchmetrics' defaults (11x11 Gaussian window, sigma 1.5): its SSIM map equals
scikit-image's `structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False)` away
from the borders; torchmetrics averages the map over the whole image (borders reflect-padded), scikit-image leaves
a 5-pixel border out, so the two means differ by ~0.002 on a 200 px image (tests/tasks/test_denoise_metrics.py
checks PSNR and the SSIM map against scikit-image). SSIM runs in float32 (float64 convolutions are slow on CPU). MS-SSIM (Wang et al. 2003) downsamples
four times with an 11-pixel window, so it needs both sides of 176 pixels or more; smaller images get None. SSIM
reflect-pads the image by half its window (5 pixels), which needs both sides of 6 or more; smaller images (a 1x1
icon, a 3 px strip) get None for SSIM too, and are still scored by PSNR.
"""

from __future__ import annotations

import numpy as np
import torch

MS_SSIM_MIN_SIDE = 176  # torchmetrics: side // 16 must exceed the window (11) - 1
SSIM_MIN_SIDE = 6  # torchmetrics reflect-pads by 5 pixels, which needs more than 5 on each side


def _tensor(image: np.ndarray) -> torch.Tensor:
    from pixelforge.data.noise import to_unit

    return torch.from_numpy(to_unit(image).transpose(2, 0, 1)[None].copy())


def psnr(result: np.ndarray, clean: np.ndarray) -> float:
    """PSNR in dB of HxWxC uint8/uint16 `result` against `clean` (inf when they are equal)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(_tensor(result), _tensor(clean), data_range=1.0))


def ms_ssim_or_none(result: np.ndarray, clean: np.ndarray) -> float | None:
    """MS-SSIM of `result` against `clean`, or None for an image too small for its five scales."""
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    if min(clean.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None
    return float(multiscale_structural_similarity_index_measure(_tensor(result).float(), _tensor(clean).float(),
                                                                 data_range=1.0))


def image_scores(result: np.ndarray, clean: np.ndarray) -> dict:
    """{"psnr", "ssim" (None under 6 px a side), "ms_ssim" (None for small images)} of HxWxC uint8/uint16 `result`
    against `clean`.

    Example:
        >>> clean = np.full((32, 32, 3), 128, np.uint8)
        >>> round(image_scores(clean + 1, clean)["psnr"], 2)
        48.13
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    ssim = None
    if min(clean.shape[:2]) >= SSIM_MIN_SIDE:
        ssim = float(structural_similarity_index_measure(_tensor(result).float(), _tensor(clean).float(),
                                                         data_range=1.0))
    return {"psnr": psnr(result, clean), "ssim": ssim, "ms_ssim": ms_ssim_or_none(result, clean)}


def mean_scores(rows: list[dict]) -> dict:
    """The mean of each score over images (MS-SSIM over the images large enough for it; None if none was)."""
    out = {}
    for key in ("psnr", "ssim", "ms_ssim"):
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out
