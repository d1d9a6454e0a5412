"""Masks move with their images under every preset, are never interpolated, and colour jitter spares 16-bit data."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as nnf
from torchvision import tv_tensors

from pixelforge.data.masks.transforms import MASK_PRESETS, ColorJitterRGB8, eval_mask_transform, train_mask_transform


def _encoded_pair(seed: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """A blocky mask of classes 0..4 and a 1-channel image whose value is (class + 1) * 40 everywhere."""
    generator = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 5, (4, 5), generator=generator, dtype=torch.uint8)
    mask = blocks.repeat_interleave(16, 0).repeat_interleave(16, 1)  # 64 x 80
    image = ((mask.to(torch.int32) + 1) * 40).to(torch.uint8)[None]
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


def _interior(mask: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Pixels whose (2r+1)^2 neighbourhood holds a single mask value (away from edges, where images blend)."""
    m = mask.float()[None, None]
    k = 2 * radius + 1
    hi = nnf.max_pool2d(m, k, 1, radius)
    lo = -nnf.max_pool2d(-m, k, 1, radius)
    inside = (hi == lo)[0, 0]
    # The frame's edge hides what was next to it before a crop or rotation, so edge pixels never count as interior.
    inside[:radius], inside[-radius:], inside[:, :radius], inside[:, -radius:] = False, False, False, False
    return inside


@pytest.mark.parametrize("augment", list(MASK_PRESETS))
def test_image_and_mask_stay_aligned_and_masks_keep_their_values(augment):
    transform = train_mask_transform(48, augment, ignore_index=255)
    for seed in range(6):
        image, mask = _encoded_pair(seed)
        before = set(mask.unique().tolist())
        torch.manual_seed(seed)
        out_image, out_mask = transform(image, mask)
        assert out_image.shape == (1, 48, 48) and out_mask.shape == (48, 48)
        assert isinstance(out_mask, tv_tensors.Mask) and out_mask.dtype == torch.uint8
        # Nearest-neighbour only: no value that was not there before (255 = rotation's out-of-image fill).
        assert set(out_mask.unique().tolist()) <= before | {255}
        expected = torch.where(out_mask == 255, 0, (out_mask.to(torch.int32) + 1) * 40)
        inside = _interior(out_mask)
        assert inside.float().mean() > 0.2  # hundreds of pixels compared
        diff = (out_image[0].to(torch.int32) - expected).abs()[inside]
        assert diff.max() <= 1, f"{augment} seed {seed}: image and mask disagree by {diff.max()}"


def test_rotation_fills_mask_with_ignore_index():
    image, mask = _encoded_pair(0)
    seen = set()
    for seed in range(10):
        torch.manual_seed(seed)
        seen |= set(train_mask_transform(48, "strong", ignore_index=99)(image, mask)[1].unique().tolist())
    assert 99 in seen  # rotated corners are ignored, not labelled background


def test_eval_transform_is_deterministic_resize_and_centre_crop():
    image, mask = _encoded_pair(1)
    a = eval_mask_transform(30)(image, mask)
    b = eval_mask_transform(30)(image, mask)
    assert a[0].shape == (1, 30, 30) and torch.equal(a[1], b[1])
    assert eval_mask_transform(32, crop=False)(image, mask)[1].shape == (32, 40)


def test_colour_jitter_only_touches_8_bit_rgb():
    jitter = ColorJitterRGB8(0.5)
    torch.manual_seed(0)
    rgb = tv_tensors.Image(torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.ones(16, 16, dtype=torch.uint8))
    changed = [not torch.equal(jitter(rgb, mask)[0], rgb) for _ in range(5)]
    assert any(changed)
    assert torch.equal(jitter(rgb, mask)[1], mask)
    gray = tv_tensors.Image(torch.randint(0, 256, (1, 16, 16), dtype=torch.uint8))
    sixteen = tv_tensors.Image(torch.rand(3, 16, 16))  # 16-bit data arrives scaled to float
    assert torch.equal(jitter(gray, mask)[0], gray) and torch.equal(jitter(sixteen, mask)[0], sixteen)


def test_unknown_preset_is_a_clear_error():
    from pixelforge.errors import PixelforgeError

    with pytest.raises(PixelforgeError, match="augment 'heavy' is not one of none, light, standard, strong"):
        train_mask_transform(32, "heavy")


def test_augment_options_knobs_override_the_preset_and_are_exactly_the_presets_fields():
    from dataclasses import fields

    from torchvision.transforms import v2

    from pixelforge.data.augment_options import MASK_KNOBS
    from pixelforge.data.masks.transforms import MaskAugment

    assert tuple(f.name for f in fields(MaskAugment)) == MASK_KNOBS
    kinds = lambda transform: [type(t) for t in transform.transforms]  # noqa: E731
    assert v2.RandomHorizontalFlip in kinds(train_mask_transform(48, "light"))
    plain = train_mask_transform(48, "light", knobs={"hflip": False, "vflip": True, "crop_scale_min": None})
    assert kinds(plain) == [v2.RandomResizedCrop, v2.RandomVerticalFlip]  # None: the preset's crop stays
    assert plain.transforms[0].scale == (0.5, 1.0)
