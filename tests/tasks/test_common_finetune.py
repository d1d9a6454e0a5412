"""Fine-tuning as the tasks use it: the gradual-unfreezing hook the engine runs, and the box tasks' rule that a
pretrained encoder's batch-norm statistics stay fixed."""

from __future__ import annotations

from types import SimpleNamespace

from torch import nn

from pixelforge.models import finetune
from pixelforge.models.classifier import build_classifier
from pixelforge.models.detectors import build_detector
from pixelforge.tasks.common.finetune import gradual_unfreezing_hook


def test_the_hook_unfreezes_the_top_stage_at_the_epoch_start_and_says_so():
    model = build_classifier("simple_cnn", num_classes=3, weights="none")
    finetune.apply_strategy(model, "gradual", epoch=0)
    said = []
    hook = gradual_unfreezing_hook(model, unfreeze_every=2, log=said.append, what="backbone")
    stages = finetune.stages(model)
    hook.on_epoch_start(SimpleNamespace(state=SimpleNamespace(epoch=2)))
    assert all(p.requires_grad for p in stages[-1]) and not any(p.requires_grad for p in stages[0])
    assert said == [f"gradual: 1 of {len(stages)} backbone stages trainable"]


def test_box_tasks_fix_the_encoder_norms_only_when_it_is_pretrained():
    from pixelforge.tasks.detect.task import DetectionTask

    model = build_detector("fcos", num_classes=2, weights="none", img_size=64)
    finetune.apply_strategy(model, "full")
    encoder = [m for m in finetune.pretrained_module(model).modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    gt = {"images": [], "annotations": [], "categories": []}
    for pretrained in (True, False):
        model.train()
        DetectionTask(gt, [], frozen_encoder_norms=pretrained).freeze_frozen_norms(model)
        assert all(m.training != pretrained for m in encoder)
