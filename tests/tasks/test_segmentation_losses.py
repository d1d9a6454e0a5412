"""Segmentation losses: ignored pixels never count, class weights do, a perfect prediction costs nothing."""

from __future__ import annotations

import pytest
import torch

from pixelforge.errors import PixelforgeError
from pixelforge.tasks.segment.losses import LOSSES, build_segmentation_loss


def _batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 16, 16, generator=generator)
    masks = torch.randint(0, 3, (2, 16, 16), generator=generator)
    masks[:, :5] = 255
    return logits, masks


@pytest.mark.parametrize("name", LOSSES)
def test_ignored_pixels_do_not_change_the_loss(name):
    loss = build_segmentation_loss(name, 3, ignore_index=255)
    logits, masks = _batch()
    before = loss(logits, masks)
    changed = logits.clone()
    changed[:, :, :5] = torch.randn_like(changed[:, :, :5]) * 10  # only the logits of ignored pixels differ
    assert torch.isfinite(before) and before > 0
    assert torch.allclose(loss(changed, masks), before, atol=1e-6)
    unignored = masks.clone()
    unignored[:, :5] = 0  # sanity: the same pixels do count once they are labelled
    assert not torch.allclose(loss(logits, unignored), before)


@pytest.mark.parametrize("name", ["ce", "dice", "focal"])
def test_class_weights_change_the_loss(name):
    logits, masks = _batch(1)
    plain = build_segmentation_loss(name, 3)(logits, masks)
    weighted = build_segmentation_loss(name, 3, class_weights=[0.1, 1.0, 5.0])(logits, masks)
    assert not torch.allclose(plain, weighted)


def test_perfect_logits_give_zero_dice_and_near_zero_combined_loss():
    _, masks = _batch(2)
    perfect = torch.nn.functional.one_hot(masks.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 50
    assert float(build_segmentation_loss("dice", 3)(perfect, masks)) < 1e-4
    assert float(build_segmentation_loss("ce+dice", 3)(perfect, masks)) < 1e-4


def test_combined_loss_is_the_sum_of_its_terms():
    logits, masks = _batch(3)
    total = build_segmentation_loss("focal+dice", 3)(logits, masks)
    parts = build_segmentation_loss("focal", 3)(logits, masks) + build_segmentation_loss("dice", 3)(logits, masks)
    assert torch.allclose(total, parts)


def test_bad_loss_options_are_one_line_errors():
    with pytest.raises(PixelforgeError, match="use one of"):
        build_segmentation_loss("lovasz", 3)
    with pytest.raises(PixelforgeError, match="one weight per class"):
        build_segmentation_loss("ce", 3, class_weights=[1.0, 2.0])
