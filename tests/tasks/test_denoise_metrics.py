"""PSNR and SSIM of the denoising evaluation equal scikit-image's reference implementation on a real photo."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pixelforge.data.noise import parse_noise, quantize, rng_for, to_unit
from pixelforge.deploy.runtime.denoise import psnr
from pixelforge.metrics.image_quality import image_scores


@pytest.fixture(scope="module")
def pair():
    clean = data.astronaut()[100:276, 150:326]  # 176 x 176: large enough for MS-SSIM
    noisy = quantize(parse_noise("gaussian:25").apply(to_unit(clean), rng_for(0, "astronaut")), np.uint8)
    return noisy, clean


def test_psnr_and_ssim_equal_scikit_image(pair):
    import torch
    from torchmetrics.functional.image import structural_similarity_index_measure

    noisy, clean = pair[0][:96, :96], pair[1][:96, :96]
    scores = image_scores(noisy, clean)
    assert scores["psnr"] == pytest.approx(peak_signal_noise_ratio(clean, noisy, data_range=255), abs=1e-4)
    reference, ref_map = structural_similarity(to_unit(clean), to_unit(noisy), data_range=1.0, channel_axis=-1,
                                               gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)
    as_tensor = lambda a: torch.from_numpy(to_unit(a).transpose(2, 0, 1)[None].copy())  # noqa: E731
    mean, tm_map = structural_similarity_index_measure(as_tensor(noisy), as_tensor(clean), data_range=1.0,
                                                       return_full_image=True)
    assert float(mean) == pytest.approx(scores["ssim"], abs=1e-4)  # pixelforge's float32 against float64
    # The same SSIM map wherever neither pads (scikit-image scores the image without its 5-pixel border) ...
    interior = tm_map[0].numpy().transpose(1, 2, 0)[5:-5, 5:-5]
    assert np.abs(interior - ref_map[5:-5, 5:-5]).max() < 1e-9
    assert float(interior.mean()) == pytest.approx(reference, abs=1e-6)
    # ... and the whole-image means differ only by those borders
    assert scores["ssim"] == pytest.approx(reference, abs=5e-3)
    assert psnr(noisy, clean) == pytest.approx(scores["psnr"], abs=1e-6)  # the web page's number
    assert 20 < scores["psnr"] < 21  # sigma 25 on 0-255 is 20.2 dB before clipping


def test_ms_ssim_only_where_the_image_is_large_enough(pair):
    noisy, clean = pair
    assert 0 < image_scores(noisy, clean)["ms_ssim"] < 1
    assert image_scores(noisy[:100, :100], clean[:100, :100])["ms_ssim"] is None


def test_sixteen_bit_images_are_scored_on_their_own_scale(pair):
    noisy, clean = pair
    noisy, clean = noisy[:64, :64], clean[:64, :64]
    wide = lambda a: a.astype(np.uint16) * 257  # noqa: E731  (the same picture in 16 bits)
    assert image_scores(wide(noisy), wide(clean))["psnr"] == pytest.approx(image_scores(noisy, clean)["psnr"], abs=1e-4)
