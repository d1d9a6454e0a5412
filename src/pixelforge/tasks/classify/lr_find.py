"""`pixelforge lr-find`: the learning-rate range test (engine/lr_find.py) on a classification config, without
training a run."""

from __future__ import annotations

from pathlib import Path

from pixelforge.engine.lr_find import LRFinderResult, lr_range_test


def find_lr_for_config(out: Path, **options) -> LRFinderResult:
    """`pixelforge lr-find`: the range test on a config's data and model, without training a run."""
    import torch
    from torch.utils.data import DataLoader

    from pixelforge.data.dataset import ImageDataset
    from pixelforge.data.transforms import decode_size, resolve_augment, train_transform
    from pixelforge.engine.fabric import new_fabric
    from pixelforge.engine.schedule import build_optimizer
    from pixelforge.models.classifier import build_classifier, check_img_size
    from pixelforge.models.finetune import apply_strategy, param_groups
    from pixelforge.tasks.classify.task import ClassificationTask, prepare_data
    from pixelforge.tasks.config import build_config

    cfg = build_config(None, **options)
    source, classes = prepare_data(cfg)
    check_img_size(cfg.model, cfg.img_size)
    accelerator = "cpu" if cfg.accelerator == "auto" and not torch.cuda.is_available() else cfg.accelerator
    fabric = new_fabric(accelerator, 1)
    fabric.seed_everything(cfg.seed, verbose=False)  # the head's initialisation and the batch order, as `train` seeds them
    model = build_classifier(cfg.model, len(classes), cfg.weights, cfg.dropout).to(fabric.device)
    apply_strategy(model, cfg.strategy)
    transform = train_transform(cfg.img_size, model.spec.mean, model.spec.std, resolve_augment(cfg.augment, cfg.augment_options))
    dataset = ImageDataset(source.split("train"), {c: i for i, c in enumerate(classes)},
                           decode_size(cfg.img_size, model.spec.crop_pct), transform)
    dataset.preload()
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    make = lambda: build_optimizer(cfg.optimizer, param_groups(model, cfg.strategy, 1.0, cfg.backbone_lr_mult, cfg.weight_decay), 1.0)  # noqa: E731
    result = lr_range_test(model, ClassificationTask(cfg.label_smoothing), loader, fabric, make, None,
                           steps=cfg.lr_find_steps)
    from pixelforge.viz.plots import plot_lr_find

    result.plot = plot_lr_find(result.lrs, result.losses, result.suggestion, Path(out))
    return result
