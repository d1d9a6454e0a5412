"""Per-pixel losses for semantic segmentation, chosen by name (`--loss`).

    ce          cross-entropy: the per-pixel classification loss; `class_weights` re-weight rare classes
    dice        soft Dice (Milletari et al. 2016, "V-Net"): overlap per class, insensitive to class frequency
    focal       focal loss (Lin et al. 2017): down-weights pixels the model already gets right
    ce+dice     the sum; the usual default (cross-entropy's stable gradients, Dice's small-object recall)
    focal+dice  the sum, for heavy imbalance
Pixels whose mask value is `ignore_index` contribute nothing to any of them. The Dice and focal terms are
segmentation-models-pytorch's (`smp.losses`), cross-entropy is PyTorch's.
"""

from __future__ import annotations

import torch
from torch import nn

from pixelforge.errors import PixelforgeError

LOSSES = ("ce", "dice", "focal", "ce+dice", "focal+dice")


class SumLoss(nn.Module):
    """The sum of several losses on the same (logits, mask) pair."""

    def __init__(self, terms: dict[str, nn.Module]):
        super().__init__()
        self.terms = nn.ModuleDict(terms)

    def forward(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return sum(term(logits, mask) for term in self.terms.values())


def build_segmentation_loss(name: str, num_classes: int, ignore_index: int | None = 255,
                            class_weights: list[float] | None = None) -> nn.Module:
    """A loss module `loss(logits [B,K,H,W], mask int64 [B,H,W]) -> scalar` for loss `name`.

    Example:
        >>> loss = build_segmentation_loss("ce+dice", num_classes=3)
        >>> float(loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))) > 0
        True
    """
    if name not in LOSSES:
        raise PixelforgeError(f"--loss {name!r}: use one of {', '.join(LOSSES)}")
    if class_weights is not None and len(class_weights) != num_classes:
        raise PixelforgeError(f"class_weights has {len(class_weights)} values but the data has {num_classes} classes; "
                              f"give one weight per class, in classes.json order")
    if class_weights is not None and (min(class_weights) < 0 or sum(class_weights) <= 0):
        raise PixelforgeError("class_weights must be non-negative and not all zero")
    terms = {part: _term(part, ignore_index, class_weights) for part in name.split("+")}
    return next(iter(terms.values())) if len(terms) == 1 else SumLoss(terms)


def _term(name: str, ignore_index: int | None, class_weights: list[float] | None) -> nn.Module:
    from segmentation_models_pytorch import losses

    if name == "ce":
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        # -100 is PyTorch's "ignore nothing real" default when no ignore value is set.
        return nn.CrossEntropyLoss(weight=weight, ignore_index=-100 if ignore_index is None else ignore_index)
    if name == "dice":
        return losses.DiceLoss("multiclass", from_logits=True, ignore_index=ignore_index, class_weights=class_weights)
    return losses.FocalLoss("multiclass", ignore_index=ignore_index, class_weights=class_weights)
