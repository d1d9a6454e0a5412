"""Fine-tuning strategies freeze what they promise, including batch-norm statistics."""

import torch

from pixelforge.models.classifier import build_classifier
from pixelforge.models.finetune import apply_strategy, param_groups
from pixelforge.tasks.classify.task import ClassificationTask


def _trainable(params):
    return sum(p.requires_grad for p in params)


def test_linear_freezes_backbone_and_its_batchnorm_statistics():
    model = build_classifier("simple_cnn", num_classes=3, weights="none")
    apply_strategy(model, "linear")
    assert _trainable(model.backbone.parameters()) == 0 and _trainable(model.head.parameters()) == 2
    bn = model.backbone.stages[0][1]
    before = bn.running_mean.clone()
    model.train()
    ClassificationTask.freeze_frozen_norms(model)
    model(torch.randn(4, 3, 32, 32) * 5 + 3)
    assert torch.equal(bn.running_mean, before)


def test_gradual_unfreezes_one_stage_per_period_from_the_top():
    model = build_classifier("simple_cnn", num_classes=3, weights="none")
    stages = model.stages()
    assert apply_strategy(model, "gradual", epoch=0, unfreeze_every=2) == 0
    assert apply_strategy(model, "gradual", epoch=2, unfreeze_every=2) == 1
    assert all(p.requires_grad for p in stages[-1]) and not any(p.requires_grad for p in stages[0])
    assert apply_strategy(model, "gradual", epoch=100) == len(stages)


def test_full_uses_discriminative_learning_rates():
    model = build_classifier("simple_cnn", num_classes=3, weights="none")
    apply_strategy(model, "full")
    groups = param_groups(model, "full", lr=1e-3, backbone_lr_mult=0.1, weight_decay=0.05)
    rates = sorted({g["lr"] for g in groups})
    assert rates == [1e-4, 1e-3]
    assert all(g["weight_decay"] == 0 for g in groups if all(p.ndim <= 1 for p in g["params"]))
    linear = param_groups(model, "linear", 1e-3, 0.1, 0.0)
    assert {id(p) for g in linear for p in g["params"]} == {id(p) for p in model.head.parameters()}
