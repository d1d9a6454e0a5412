"""Deletion/insertion scores: a heat map that finds the pixels a model relies on beats a random pixel order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pixelforge.explain.faithfulness import _masks, deletion_insertion, faithfulness_summary, random_heatmaps
from pixelforge.explain.methods import heatmaps

PATCH = (slice(4, 12), slice(18, 26))  # the only region that decides the class


def _region_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images whose class is the sign of one 8x8 patch's colour (bright = class 1, dark = class 0)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g) * 0.5
    y = torch.randint(0, 2, (n,), generator=g)
    x[:, :, PATCH[0], PATCH[1]] = (y.float() * 3 - 1.5)[:, None, None, None]
    return x, y


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Models this small run many times faster on one thread when other processes keep the cores busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def region_model():
    return _train_region_model()


def _train_region_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(40):
        x, y = _region_data(32, step)
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, y = _region_data(200, 999)
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.95  # the model really learned the patch
    return model.eval()


def test_gradcam_points_at_the_deciding_region(region_model):
    x, y = _region_data(8, 123)
    maps = heatmaps(region_model, x, y.tolist(), "gradcam")
    inside = maps[:, PATCH[0], PATCH[1]].mean()
    assert inside > 2 * maps.mean()


def test_gradcam_deletion_beats_a_random_order(region_model):
    x, y = _region_data(8, 7)
    keep = y == 1  # the bright patch is the evidence for class 1
    x = x[keep]
    maps = heatmaps(region_model, x, [1] * len(x), "gradcam")
    summary = faithfulness_summary(region_model, x, maps, [1] * len(x), steps=10)
    assert summary["deletion_auc"] < summary["random_deletion_auc"] - 0.1
    # (Insertion starts from a blurred image, and a blurred bright patch is still bright: no contrast to test here.)


def test_masks_grow_by_importance():
    heat = np.arange(16, dtype=np.float64).reshape(4, 4)
    masks = _masks(heat, 4)
    assert masks.shape == (5, 4, 4)
    assert masks[0].sum() == 0 and masks[-1].sum() == 16
    assert masks[1].reshape(-1)[12:].all() and masks[1].sum() == 4  # the four largest values go first


def test_scores_are_areas_in_unit_range(region_model):
    x, _ = _region_data(2, 3)
    scores = deletion_insertion(region_model, x, random_heatmaps((2, 32, 32)), [0, 1], steps=4)
    assert len(scores["deletion_curves"][0]) == 5
    assert all(0 <= v <= 1 for v in scores["deletion"] + scores["insertion"])
