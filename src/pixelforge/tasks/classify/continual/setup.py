"""The engine's TaskSetup for a continual step: the parent's model with a grown head, the new images (plus the
replay memory), and the step with the strategy's term.

Always end to end (never the linear strategy's cached features): EWC and LwF act on the model's outputs and
weights as it trains, and the memory changes the images.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from pixelforge.data.sources import DataSource, Sample
from pixelforge.runs import folder as rd


def with_memory(source: DataSource, memory: dict | None) -> DataSource:
    """`source` plus the memory's images as extra training samples."""
    from pixelforge.tasks.classify.continual.replay import ReplayMemory

    if not memory:
        return source
    extra = [Sample(path, label, "train") for path, label in ReplayMemory.from_state(memory).items()]
    return replace(source, samples=list(source.samples) + extra)


def build_continual_setup(cfg, source, classes: list[str], fabric, progress):
    from pixelforge.data.transforms import resolve_augment
    from pixelforge.engine.setup import TaskSetup
    from pixelforge.engine.threads import default_workers
    from pixelforge.models.classifier import build_classifier
    from pixelforge.models.finetune import apply_strategy, param_groups
    from pixelforge.tasks.classify.balance import build_train_sampler
    from pixelforge.tasks.classify.continual.carry import carry_of
    from pixelforge.tasks.classify.continual.lineage import load_parent_model
    from pixelforge.tasks.classify.continual.step import ContinualStep
    from pixelforge.tasks.classify.task import _decoded_datasets, _end_to_end_path

    parent = Path(cfg.continue_from)
    carry = carry_of(parent, memory_size=cfg.memory if cfg.continual == "replay" else None,
                     ewc=cfg.continual == "ewc")
    model = load_parent_model(parent, build_classifier(cfg.model, len(classes), "none", cfg.dropout))
    old_model = None
    if cfg.continual == "lwf":  # the teacher: the parent as it was, frozen
        n_old = len(rd.read_json(parent / "classes.json"))  # it answers for the parent's classes only
        old_model = load_parent_model(parent, build_classifier(cfg.model, n_old, "none", cfg.dropout))
        old_model = old_model.eval().requires_grad_(False).to(fabric.device)
    memory = carry.get("memory")
    if memory:
        progress.info(f"replay: {sum(len(v) for v in memory['slots'].values())} images from the memory of "
                      f"{len(memory['slots'])} old classes join the new training images")
    augment = resolve_augment(cfg.augment, cfg.augment_options)
    train_set, val_set, unreadable = _decoded_datasets(cfg, with_memory(source, memory), classes, model.spec,
                                                       augment, progress)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.to(fabric.device)
    for param in model.parameters():
        param.requires_grad_(True)
    apply_strategy(model, cfg.strategy, 0, cfg.unfreeze_every)
    if cfg.strategy == "linear":  # honoured, not ignored: said, since the step is still end to end
        progress.info(f"strategy linear: {parent}'s backbone stays frozen (weights and batch-norm statistics); "
                      "only the head trains, on images decoded and augmented each epoch")
    hooks = []
    if cfg.strategy == "gradual":  # as a first run unfreezes: else the backbone stayed frozen for every epoch
        from pixelforge.tasks.common.finetune import gradual_unfreezing_hook

        hooks.append(gradual_unfreezing_hook(model, cfg.unfreeze_every, progress.info, "backbone"))
    forward, path = _end_to_end_path(cfg, model, fabric, progress)
    step = ContinualStep(cfg.label_smoothing, params=dict(model.named_parameters()), ewc=carry.get("ewc"),
                         ewc_lambda=cfg.ewc_lambda, old_model=old_model, lwf_alpha=cfg.lwf_alpha,
                         lwf_temperature=cfg.lwf_temperature, memory=memory, forward=forward)
    return TaskSetup(
        task=step, model=model, trained=model, train_data=train_set, val_data=val_set,
        param_groups=lambda lr: param_groups(model, cfg.strategy, lr, cfg.backbone_lr_mult, cfg.weight_decay),
        n_train=len(train_set), n_val=len(val_set), workers=default_workers() if cfg.workers is None else cfg.workers,
        val_batch_size=max(cfg.batch_size, 64), path=f"{path}, continual {cfg.continual}",
        channels_last=cfg.channels_last, hooks=hooks, extra_checkpoint={"classes": classes}, unreadable=unreadable,
        train_sampler=build_train_sampler(cfg, train_set.samples, len(train_set), fabric.global_rank,
                                          fabric.world_size),
    )

