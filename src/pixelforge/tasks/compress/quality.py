"""Image-quality scores of a decoded image against its original, from well-kept implementations:
scikit-image's PSNR and pytorch-msssim's MS-SSIM (Wang et al. 2003), both on 8-bit RGB at full resolution."""

from __future__ import annotations

import numpy as np

# pytorch-msssim's 5 scales with its 11-px window need the short side above (11 - 1) * 2**4 = 160 px.
MS_SSIM_MIN_SIDE = 161


def psnr(original: np.ndarray, decoded: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    if np.array_equal(original, decoded):
        return float("inf")
    return float(peak_signal_noise_ratio(original, decoded, data_range=255))


def ms_ssim_or_none(original: np.ndarray, decoded: np.ndarray) -> float | None:
    """MS-SSIM on the 0-255 scale, or None for an image too small for its five scales."""
    if min(original.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None
    import torch
    from pytorch_msssim import ms_ssim

    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()[None]

    with torch.no_grad():
        return float(ms_ssim(tensor(original), tensor(decoded), data_range=255))
