"""Faithfulness of a heat map: the deletion and insertion scores of RISE (Petsiuk, Das & Saenko, BMVC 2018).

Deletion: remove the pixels the map calls most important first (replace them with the mean colour, i.e. zero
after normalization), in `steps` equal chunks, and track the model's probability for the explained class; the area
under that curve is low when the map found what the model relies on. Insertion: start from a heavily blurred
image and put the most important pixels back first; the area is high for a faithful map. The same scores for a
random order of image blocks are the baseline a map must beat. Scores lie in [0, 1]; each image costs
2 x (steps + 1) forward passes. Pixel-level maps (saliency, integrated gradients) delete scattered pixels, which
lowers a CNN's confidence by itself: compare them with region-level maps (the CAMs) by insertion.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def _blurred(x: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2.functional import gaussian_blur

    sigma = max(1.0, x.shape[-1] / 45)  # Petsiuk et al. use sigma 5 at 224 px
    kernel = 2 * round(2 * sigma) + 1
    return gaussian_blur(x, [kernel, kernel], [sigma, sigma])


def _masks(heatmap: np.ndarray, steps: int) -> torch.Tensor:
    """(steps + 1, H, W) masks: mask k covers the k/steps most important pixels."""
    h, w = heatmap.shape
    ties = np.random.default_rng(0).random(h * w)  # equal values (e.g. a CAM's zero region) in random order
    order = np.lexsort((ties, -heatmap.ravel()))
    rank = np.empty(h * w, dtype=np.int64)
    rank[order] = np.arange(h * w)
    cut = np.round(np.arange(steps + 1) / steps * h * w)
    return torch.from_numpy(rank[None, :] < cut[:, None]).reshape(steps + 1, h, w).float()


@torch.no_grad()
def _probabilities(model, images: torch.Tensor, target: int, batch_size: int) -> np.ndarray:
    out = [F.softmax(model(chunk).float(), dim=1)[:, target] for chunk in images.split(batch_size)]
    return torch.cat(out).cpu().numpy()


def deletion_insertion(model, x: torch.Tensor, heatmaps: np.ndarray, targets: list[int], steps: int = 10,
                       batch_size: int = 64) -> dict:
    """Per-image deletion and insertion areas (lists) and the probability curves behind them.

    Example:
        >>> scores = deletion_insertion(model, x, maps, [0, 1])  # doctest: +SKIP
        >>> scores["deletion"], scores["insertion"]  # doctest: +SKIP
        ([0.12, 0.30], [0.81, 0.64])
    """
    model.eval()
    result = {"deletion": [], "insertion": [], "deletion_curves": [], "insertion_curves": []}
    for image, heatmap, target in zip(x, heatmaps, targets):
        masks = _masks(np.asarray(heatmap, dtype=np.float64), steps).to(image.device)[:, None]
        image = image[None]
        deleted = image * (1 - masks)  # the mean colour is 0 after normalization
        inserted = _blurred(image) * (1 - masks) + image * masks
        probs = _probabilities(model, torch.cat([deleted, inserted]), int(target), batch_size)
        for kind, curve in (("deletion", probs[: steps + 1]), ("insertion", probs[steps + 1 :])):
            result[kind].append(float(np.trapezoid(curve, dx=1 / steps)))
            result[f"{kind}_curves"].append([round(float(p), 5) for p in curve])
    return result


def random_heatmaps(shape: tuple[int, ...], seed: int = 0, cells: int = 8) -> np.ndarray:
    """Random maps of `cells` x `cells` blocks: the order a heat map has to beat.

    Blocks, not single pixels: scattering grey pixels over a whole photo is noise that lowers a CNN's confidence by
    itself, so a pixel-random order would look "faithful" for the wrong reason (Rong et al. 2022, ROAD).
    """
    n, h, w = shape
    blocks = np.random.default_rng(seed).random((n, cells, cells), dtype=np.float32)
    rows, cols = np.arange(h) * cells // h, np.arange(w) * cells // w
    return blocks[:, rows][:, :, cols]


def faithfulness_summary(model, x: torch.Tensor, heatmaps: np.ndarray, targets: list[int], steps: int = 10) -> dict:
    """Mean deletion/insertion areas of `heatmaps` and of random block orders, plus the per-image values."""
    scores = deletion_insertion(model, x, heatmaps, targets, steps)
    chance = deletion_insertion(model, x, random_heatmaps(np.shape(heatmaps)), targets, steps)
    mean = lambda values: round(float(np.mean(values)), 4)  # noqa: E731
    return {
        "images": len(targets), "steps": steps,
        "deletion_auc": mean(scores["deletion"]), "insertion_auc": mean(scores["insertion"]),
        "random_deletion_auc": mean(chance["deletion"]), "random_insertion_auc": mean(chance["insertion"]),
        "per_image": [{"deletion_auc": round(d, 4), "insertion_auc": round(i, 4), "random_deletion_auc": round(rd, 4),
                       "random_insertion_auc": round(ri, 4)}
                      for d, i, rd, ri in zip(scores["deletion"], scores["insertion"], chance["deletion"],
                                              chance["insertion"])],
    }
