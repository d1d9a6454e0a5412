"""One set of fine-tuning strategies for every model kind: `linear` freezes exactly the pretrained part (its
batch-norm statistics too), `full` slows it down to `lr * backbone_lr_mult`, `gradual` unfreezes it from the top."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelforge.models import finetune
from pixelforge.models.classifier import build_classifier
from pixelforge.models.detectors import build_detector
from pixelforge.models.segmenters import build_segmenter


def _inputs(size: int, count: int = 2) -> list[torch.Tensor]:
    """Images far from the initial batch-norm statistics (mean 3, std 5), so a forward would move them."""
    torch.manual_seed(0)
    return [torch.randn(3, size, size) * 5 + 3 for _ in range(count)]


def _classifier():
    model = build_classifier("simple_cnn", num_classes=3, weights="none")
    return model, lambda: model(torch.stack(_inputs(32)))


def _detector():
    model = build_detector("fcos", num_classes=2, weights="none", img_size=64)
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([1])}] * 2
    return model, lambda: model(_inputs(64), targets)  # train mode: the loss dict


def _segmenter():
    model = build_segmenter("unet", num_classes=2, weights="none")
    return model, lambda: model(torch.stack(_inputs(64)))


# (model, a train-mode forward of it) for each kind of model the strategies serve
MODELS = pytest.mark.parametrize("build", [_classifier, _detector, _segmenter], ids=["classifier", "detector", "segmenter"])


def _norm_stats(module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": value.clone() for name, m in module.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) for key, value in m.state_dict().items()}


def _ids(params) -> set[int]:
    return {id(p) for p in params}


@MODELS
def test_linear_freezes_exactly_the_pretrained_part_and_its_batchnorm_statistics(build):
    model, forward = build()
    pretrained = finetune.pretrained_module(model)
    assert _norm_stats(pretrained), "the test needs batch norms in the pretrained part"
    assert finetune.apply_strategy(model, "linear") == 0
    assert _ids(p for p in model.parameters() if not p.requires_grad) == _ids(pretrained.parameters())
    assert _ids(p for g in finetune.param_groups(model, "linear", 1e-3, 0.1, 0.0) for p in g["params"]) == \
        _ids(finetune.new_parameters(model))

    before = _norm_stats(pretrained)
    model.train()
    finetune.freeze_frozen_norms(model)
    forward()
    assert all(torch.equal(before[k], v) for k, v in _norm_stats(pretrained).items())

    model.train()  # the control: without freeze_frozen_norms the same forward moves them
    forward()
    assert any(not torch.equal(before[k], v) for k, v in _norm_stats(pretrained).items())


@MODELS
def test_full_puts_the_pretrained_part_at_lr_times_the_multiplier(build):
    model, _ = build()
    finetune.apply_strategy(model, "full")
    assert all(p.requires_grad for p in model.parameters())
    groups = finetune.param_groups(model, "full", lr=1e-3, backbone_lr_mult=0.1, weight_decay=0.05)
    pretrained = _ids(finetune.pretrained_parameters(model))
    for group in groups:
        in_pretrained = {id(p) in pretrained for p in group["params"]}
        assert len(in_pretrained) == 1  # a group is all pretrained or all new
        assert group["lr"] == pytest.approx(1e-4 if in_pretrained == {True} else 1e-3)
        if all(p.ndim <= 1 for p in group["params"]):
            assert group["weight_decay"] == 0.0  # biases and norm weights
    listed = [id(p) for g in groups for p in g["params"]]
    assert sorted(listed) == sorted(_ids(model.parameters()))  # every parameter exactly once


@MODELS
def test_gradual_unfreezes_the_top_stage_first(build):
    model, _ = build()
    stages = finetune.stages(model)
    assert len(stages) >= 2
    assert finetune.apply_strategy(model, "gradual", epoch=0) == 0
    assert not any(p.requires_grad for p in finetune.pretrained_parameters(model))
    assert all(p.requires_grad for p in finetune.new_parameters(model))
    assert finetune.apply_strategy(model, "gradual", epoch=1, unfreeze_every=1) == 1
    assert all(p.requires_grad for p in stages[-1])
    assert not any(p.requires_grad for stage in stages[:-1] for p in stage)
    assert finetune.apply_strategy(model, "gradual", epoch=3, unfreeze_every=2) == 1  # one stage per 2 epochs
    assert finetune.apply_strategy(model, "gradual", epoch=100) == len(stages)
    assert all(p.requires_grad for stage in stages for p in stage)


def test_pretrained_norms_stay_fixed_even_when_they_learn():
    # Detection's rule with pretrained weights: the encoder's statistics stay put under `full` too; new norms move.
    model, _ = _segmenter()
    finetune.apply_strategy(model, "full")
    model.train()
    finetune.freeze_frozen_norms(model, pretrained_norms=True)
    encoder = {id(m) for m in finetune.pretrained_module(model).modules()}
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(not m.training for m in norms if id(m) in encoder)
    assert any(m.training for m in norms if id(m) not in encoder)
