"""Image classification as an engine task: its steps, its loss, and how fine-tuning strategies freeze the model.

Strategies (the transfer-learning recipes of Yosinski et al. 2014 and ULMFiT's gradual unfreezing, Howard & Ruder
2018):
    linear   backbone frozen (batch-norm statistics too), only the new head learns
    full     everything learns; the backbone at `lr * backbone_lr_mult` (discriminative learning rates)
    gradual  starts as linear, then unfreezes one backbone stage per `unfreeze_every` epochs, from the top
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ClassificationTask:
    def __init__(self, label_smoothing: float = 0.0, mixer=None):
        self.label_smoothing = label_smoothing
        self.mixer = mixer  # MixUp/CutMix on whole batches (soft targets), or None

    def training_step(self, model: nn.Module, batch) -> dict:
        x, y = batch
        hard = y
        if self.mixer is not None:
            x, y = self.mixer(x, y)
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        correct = (logits.argmax(1) == hard).sum()
        return {"loss": loss, "correct": correct.detach(), "count": len(hard)}

    def validation_step(self, model: nn.Module, batch) -> dict:
        x, y = batch
        logits = model(x)
        return {"loss": F.cross_entropy(logits, y), "correct": (logits.argmax(1) == y).sum(), "count": len(y)}

    @staticmethod
    def freeze_frozen_norms(model: nn.Module) -> None:
        """Keep batch-norm layers whose parameters are frozen in eval mode, so their running statistics stay put."""
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                params = list(module.parameters(recurse=False))
                if params and not any(p.requires_grad for p in params):
                    module.eval()


def param_groups(model, strategy: str, lr: float, backbone_lr_mult: float, weight_decay: float) -> list[dict]:
    """Optimizer groups: the head at `lr`, the backbone (when it can learn) at `lr * backbone_lr_mult`.

    Biases and norm weights get no weight decay (the usual timm/torchvision recipe).
    """
    groups = []

    def split_decay(params, group_lr):
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        return [{"params": decay, "lr": group_lr, "weight_decay": weight_decay},
                {"params": no_decay, "lr": group_lr, "weight_decay": 0.0}]

    if strategy != "linear":
        groups += split_decay(list(model.backbone.parameters()), lr * backbone_lr_mult)
    groups += split_decay(list(model.head.parameters()), lr)
    return [g for g in groups if g["params"]]


def apply_strategy(model, strategy: str, epoch: int = 0, unfreeze_every: int = 1) -> int:
    """Set `requires_grad` for `strategy` at `epoch`; return how many backbone stages are trainable."""
    stages = model.stages()
    for param in model.backbone.parameters():  # parameters no stage lists stay frozen unless fully fine-tuning
        param.requires_grad_(strategy == "full")
    if strategy == "full":
        trainable = len(stages)
    elif strategy == "linear":
        trainable = 0
    else:
        trainable = min(len(stages), epoch // unfreeze_every)
    for index, params in enumerate(stages):
        for param in params:
            param.requires_grad_(index >= len(stages) - trainable)
    for param in model.head.parameters():
        param.requires_grad_(True)
    return trainable


def top_k_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    return float((logits.topk(k, dim=1).indices == targets[:, None]).any(1).float().mean())
