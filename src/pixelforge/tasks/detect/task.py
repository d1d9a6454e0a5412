"""Object detection as an engine task: data, detector, loss-dict step, COCO mAP validation and fine-tuning strategies.

The engine (engine/train.py) calls `prepare_data`, then `build_setup`, trains, and calls `write_report`. Training
sums the detector's own loss dict (each family's published losses). Validation runs the detector in eval mode,
maps its boxes back to the original images' pixels and category ids, and scores them with pycocotools against
the val split's ground truth, so `val_map50` (the metric that picks best.ckpt) is exactly what `pixelforge
evaluate` would report on the same images.

Strategies (as for classification; Yosinski et al. 2014, ULMFiT's gradual unfreezing, Howard & Ruder 2018) act on
the pretrained encoder (`models.detectors.encoder_of`); FPN and heads are new and always learn:
    linear   encoder frozen, FPN and heads learn
    full     everything learns; the encoder at `lr * backbone_lr_mult`
    gradual  starts as linear, then unfreezes one encoder stage per `unfreeze_every` epochs, from the top
With pretrained weights the encoder's batch-norm statistics stay fixed in every strategy (torchvision and
detectron2 freeze them too): detection batches are a few images, too few for good statistics.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pixelforge.errors import PixelforgeError
from pixelforge.metrics.coco import coco_metrics
from pixelforge.models.detectors import (DEFAULT_ARCH, build_detector, check_detector_options, encoder_of,
                                         encoder_stages)


class DetectionTask:
    """The engine's task protocol for torchvision detectors (batches are (list of images, list of targets))."""

    monitor = "val_map50"

    def __init__(self, val_gt: dict, category_ids: list[int], frozen_encoder_norms: bool = True):
        self.val_gt = val_gt
        self.category_ids = list(category_ids)
        self.sizes = {int(img["id"]): (img["width"], img["height"]) for img in val_gt["images"]}
        self.frozen_encoder_norms = frozen_encoder_norms

    def training_step(self, model: nn.Module, batch) -> dict:
        images, targets = batch
        losses = model(images, [plain_target(t) for t in targets])
        return {"loss": sum(losses.values()), "count": len(images)}

    @torch.no_grad()
    def validate(self, model: nn.Module, batches, fabric) -> dict:
        results = []
        for images, targets in batches:
            for image, target, output in zip(images, targets, model(images)):
                image_id = int(target["image_id"])
                results += self.image_results(output, image_id, tuple(image.shape[-2:]), self.sizes[image_id])
        if fabric.world_size > 1:  # every process scored its share of the images: score them together
            gathered = [None] * fabric.world_size
            torch.distributed.all_gather_object(gathered, results)
            results = [r for part in gathered for r in part]
        # Eval-mode detectors compute no loss; a second, train-mode pass would cost as much as the validation.
        return {"val_loss": float("nan"), **self.scores(results)}

    def image_results(self, output: dict, image_id: int, input_hw: tuple, original_wh: tuple) -> list[dict]:
        """One image's predictions as COCO results, in its original pixels and category ids."""
        return coco_results(output, image_id, input_hw, original_wh, self.category_ids)

    def scores(self, results: list[dict]) -> dict:
        metrics = coco_metrics(self.val_gt, results)
        return {"val_map": max(metrics["map"], 0.0), "val_map50": max(metrics["map50"], 0.0)}

    def freeze_frozen_norms(self, model: nn.Module) -> None:
        """Batch-norm layers in eval mode: the pretrained encoder's, and any whose parameters are frozen."""
        encoder = encoder_of(model) if self.frozen_encoder_norms else None
        frozen = {id(m) for m in encoder.modules()} if encoder is not None else set()
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                params = list(module.parameters(recurse=False))
                if id(module) in frozen or (params and not any(p.requires_grad for p in params)):
                    module.eval()


def plain_target(target: dict) -> dict:
    """A detector target of plain tensors (tv_tensors subclasses would carry their metadata through the losses)."""
    return {"boxes": target["boxes"].as_subclass(torch.Tensor).float(), "labels": target["labels"]}


def coco_results(output: dict, image_id: int, input_hw: tuple[int, int], original_wh: tuple[int, int],
                 category_ids: list[int]) -> list[dict]:
    """One image's detections as COCO results: boxes scaled from the model input back to the original pixels.

    Label 0 is dropped: FCOS and RetinaNet score every class with its own sigmoid, including the background slot
    that torchvision's label convention keeps (never a positive in training, so it all but never fires).
    """
    height, width = input_hw
    sx, sy = original_wh[0] / width, original_wh[1] / height
    boxes = output["boxes"].detach().float().cpu() * torch.tensor([sx, sy, sx, sy])
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist()
    return [{"image_id": image_id, "category_id": int(category_ids[int(label) - 1]),
             "bbox": [round(v, 2) for v in box], "score": round(float(score), 5)}
            for box, score, label in zip(xywh, output["scores"].tolist(), output["labels"].tolist()) if label > 0]


def param_groups(model, strategy: str, lr: float, backbone_lr_mult: float, weight_decay: float) -> list[dict]:
    """Optimizer groups: FPN and heads at `lr`, the encoder (unless frozen) at `lr * backbone_lr_mult`.

    Biases and norm weights get no weight decay (the usual timm/torchvision recipe).
    """
    encoder_ids = {id(p) for p in encoder_of(model).parameters()}
    new = [p for p in model.parameters() if id(p) not in encoder_ids]

    def split_decay(params, group_lr):
        return [{"params": [p for p in params if p.ndim > 1], "lr": group_lr, "weight_decay": weight_decay},
                {"params": [p for p in params if p.ndim <= 1], "lr": group_lr, "weight_decay": 0.0}]

    groups = split_decay(list(encoder_of(model).parameters()), lr * backbone_lr_mult) if strategy != "linear" else []
    groups += split_decay(new, lr)
    return [g for g in groups if g["params"]]


def apply_strategy(model, strategy: str, epoch: int = 0, unfreeze_every: int = 1) -> int:
    """Set `requires_grad` for `strategy` at `epoch`; return how many encoder stages are trainable."""
    stages = encoder_stages(model)
    for param in model.parameters():
        param.requires_grad_(True)
    for param in encoder_of(model).parameters():  # parameters no stage lists stay frozen unless fully fine-tuning
        param.requires_grad_(strategy == "full")
    trainable = {"full": len(stages), "linear": 0}.get(strategy, min(len(stages), epoch // unfreeze_every))
    for index, params in enumerate(stages):
        for param in params:
            param.requires_grad_(index >= len(stages) - trainable)
    return trainable


def prepare_data(cfg):
    """Read and check the boxes, give every image a split; classes are the category names in id order."""
    from pixelforge.data.boxes.source import make_box_splits, read_boxes

    check_detector_options(cfg.arch or DEFAULT_ARCH, cfg.model, cfg.weights, cfg.anchor_sizes)
    data = cfg.data
    if data == "shapes":
        from pixelforge.data.builtin import materialize

        data = str(materialize("shapes", kind="boxes"))
    source = make_box_splits(read_boxes(data), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    train, val = source.split("train"), source.split("val")
    if not train or not val:
        raise PixelforgeError(f"{source.origin}: need images in both train and val splits "
                              f"(found {len(train)} train, {len(val)} val)")
    if not any(len(image.boxes) for image in train):
        raise PixelforgeError(f"{source.origin}: the training images have no boxes; nothing to learn from")
    return source, list(source.classes)


def build_setup(cfg, source, classes: list[str], fabric, progress):
    """The detector, its datasets (decoded once into RAM) and optimizer groups, as a `TaskSetup`."""
    from pixelforge.data.boxes.coco import coco_dict

    arch = cfg.arch or DEFAULT_ARCH
    model = build_detector(arch, cfg.model, len(classes), cfg.weights, cfg.img_size, cfg.anchor_sizes,
                           cfg.min_size, cfg.max_size)

    def make_task(val_images):
        return DetectionTask(coco_dict(val_images, source.categories), source.category_ids,
                             frozen_encoder_norms=cfg.weights != "none")

    return box_task_setup(cfg, source, classes, fabric, progress, model, make_task, source.split("train"),
                          source.split("val"), {"arch": arch, "task": "detect"})


def box_task_setup(cfg, source, classes, fabric, progress, model, make_task, train_images, val_images,
                   checkpoint: dict):
    """The part of a setup every box task shares (detection, instance segmentation): datasets decoded once into
    RAM, the freezing strategy, gradual unfreezing and optimizer groups around an already-built `model`.

    `make_task(val_images)` builds the task from the validation images that decoded (its ground truth).
    """
    from pixelforge.data.boxes.dataset import BoxDataset, box_collate
    from pixelforge.data.boxes.transforms import eval_box_transform, train_box_transform
    from pixelforge.engine.hooks import GradualUnfreezing
    from pixelforge.engine.setup import TaskSetup
    from pixelforge.engine.threads import single_threaded

    ids = source.category_ids
    train_set = BoxDataset(train_images, ids, train_box_transform(cfg.img_size, cfg.augment), cfg.img_size)
    val_set = BoxDataset(val_images, ids, eval_box_transform(cfg.img_size), cfg.img_size)
    advance, close = progress.counter("decoding images", len(train_set) + len(val_set))
    unreadable = (train_set.preload(ram_budget_gb=cfg.ram_budget_gb / 2, progress=advance)
                  + val_set.preload(ram_budget_gb=cfg.ram_budget_gb / 2, progress=advance))
    close()
    # Per-image transforms on one thread (engine/threads.py: 3-50x faster on few cores); the model uses all.
    train_set.transform, val_set.transform = single_threaded(train_set.transform), single_threaded(val_set.transform)
    model.to(fabric.device)
    apply_strategy(model, cfg.strategy, 0, cfg.unfreeze_every)

    hooks = [GradualUnfreezing(lambda epoch: apply_strategy(model, "gradual", epoch, cfg.unfreeze_every),
                               len(encoder_stages(model)), "encoder", progress.info)] if cfg.strategy == "gradual" else []

    return TaskSetup(
        task=make_task(val_set.images), model=model, trained=model, train_data=train_set, val_data=val_set,
        param_groups=lambda lr: param_groups(model, cfg.strategy, lr, cfg.backbone_lr_mult, cfg.weight_decay),
        n_train=len(train_set), n_val=len(val_set), collate_fn=box_collate, workers=cfg.workers or 0,
        hooks=hooks, unreadable=unreadable,
        extra_checkpoint={"classes": classes, "category_ids": ids, **checkpoint},
    )


def write_report(run_dir: Path) -> Path:
    """Evaluate best.ckpt on the run's val split and write report.html with its figures."""
    from pixelforge.tasks.detect.report import write_detection_report

    return write_detection_report(Path(run_dir))
