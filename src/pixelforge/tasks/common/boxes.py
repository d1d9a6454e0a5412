"""What the box tasks (detection, and instance segmentation, which is detection plus a mask per object) share:
the engine step, the setup around a torchvision detector, COCO results, which images to evaluate on, and how
COCO numbers are shown.

Both tasks train a torchvision detector that returns its own loss dict, validate with pycocotools on the original
images' pixels, and fine-tune the same way: models/finetune.py's strategies on the pretrained encoder, whose
batch-norm statistics stay fixed whenever the encoder is pretrained (a few images a batch are too few for good
statistics; torchvision and detectron2 freeze them too).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from pixelforge.errors import PixelforgeError
from pixelforge.models.finetune import apply_strategy, freeze_frozen_norms, param_groups


class BoxTask:
    """The engine's task protocol for torchvision detectors (batches are (list of images, list of targets)).

    A box task says how a target becomes the detector's (`training_target`), how one image's output becomes COCO
    results (`image_results`) and how results are scored (`scores`, which also picks the `monitor`).
    """

    monitor = "val_map50"

    def __init__(self, val_gt: dict, category_ids: list[int], frozen_encoder_norms: bool = True):
        self.val_gt = val_gt
        self.category_ids = list(category_ids)
        self.sizes = {int(img["id"]): (img["width"], img["height"]) for img in val_gt["images"]}
        self.frozen_encoder_norms = frozen_encoder_norms
        # The engine calls it after `model.train()`: batch norms stay in eval mode where their parameters are
        # frozen, and throughout a pretrained encoder (a few images a batch make poor statistics).
        self.freeze_frozen_norms = partial(freeze_frozen_norms, pretrained_norms=frozen_encoder_norms)

    def training_target(self, image: torch.Tensor, target: dict) -> dict:
        return plain_target(target)

    def training_step(self, model: nn.Module, batch) -> dict:
        images, targets = batch
        losses = model(images, [self.training_target(i, t) for i, t in zip(images, targets)])
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
        # No val_loss column: eval-mode detectors compute no loss, and a second, train-mode pass would cost as much
        # as the validation; a column of NaN told the user nothing.
        return self.scores(results)

    def image_results(self, output: dict, image_id: int, input_hw: tuple, original_wh: tuple) -> list[dict]:
        """One image's predictions as COCO results, in its original pixels and category ids."""
        return coco_results(output, image_id, input_hw, original_wh, self.category_ids)

    def scores(self, results: list[dict]) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must say how its COCO results are scored")


def plain_target(target: dict) -> dict:
    """A detector target of plain tensors (tv_tensors subclasses would carry their metadata through the losses)."""
    return {"boxes": target["boxes"].as_subclass(torch.Tensor).float(), "labels": target["labels"]}


def coco_results(output: dict, image_id: int, input_hw: tuple[int, int], original_wh: tuple[int, int],
                 category_ids: list[int]) -> list[dict]:
    """One image's detections as COCO results: boxes scaled from the model input back to the original pixels.

    Label 0 is dropped: FCOS and RetinaNet score every class with its own sigmoid, including the background slot
    that torchvision's label convention keeps (never a positive in training, so it all but never fires).

    Example:
        >>> out = {"boxes": torch.tensor([[0., 0., 10., 20.]]), "scores": torch.tensor([0.9]),
        ...        "labels": torch.tensor([1])}
        >>> coco_results(out, 5, (50, 50), (100, 100), [7])[0]["bbox"]
        [0.0, 0.0, 20.0, 40.0]
    """
    height, width = input_hw
    sx, sy = original_wh[0] / width, original_wh[1] / height
    boxes = output["boxes"].detach().float().cpu() * torch.tensor([sx, sy, sx, sy])
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist()
    return [{"image_id": image_id, "category_id": int(category_ids[int(label) - 1]),
             "bbox": [round(v, 2) for v in box], "score": round(float(score), 5)}
            for box, score, label in zip(xywh, output["scores"].tolist(), output["labels"].tolist()) if label > 0]


def same_canvas_batches(dataset, batch_size: int, model=None):
    """Yield batches of (index, item) over `dataset` (items `(image [C, H, W], target)`, each read once), each at
    most `batch_size` items that the detector `model` pads to one canvas.

    torchvision's detectors pad a batch to its largest image, rounded up to `transform.size_divisible` (32), and the
    padding changes what the network sees near the right and bottom edges and which anchors compete for proposals:
    an image batched with larger ones got other scores and boxes than alone, so `predict` on a folder disagreed
    with `predict` on the same file and with the exported package (one image per call). Images whose sides round
    up to the same multiple get the very canvas they would get alone, so they still share batches. Items wait in
    one bucket a canvas (at most `batch_size` each), so memory stays bounded however many images there are.

    Example:
        >>> items = [(torch.zeros(3, h, w), i) for i, (h, w) in enumerate([(100, 160), (160, 90), (97, 160), (100, 160)])]
        >>> [[index for index, _ in batch] for batch in same_canvas_batches(items, 2)]
        [[0, 3], [1], [2]]
    """
    multiple = max(1, int(getattr(getattr(model, "transform", None), "size_divisible", 1) or 1))
    buckets: dict[tuple, list] = {}
    for index in range(len(dataset)):
        item = dataset[index]
        canvas = tuple(-(-int(side) // multiple) * multiple for side in item[0].shape[-2:])
        bucket = buckets.setdefault(canvas, [])
        bucket.append((index, item))
        if len(bucket) == batch_size:
            yield buckets.pop(canvas)
    yield from buckets.values()


def format_coco(value) -> str:
    """A COCO metric for a report: 3 decimals, or "—" where pycocotools has none (NaN, or -1: no ground truth in
    that size range), since 0.000 would read as a model that found nothing."""
    return "—" if value is None or (isinstance(value, float) and (math.isnan(value) or value < 0)) else f"{value:.3f}"


def select_box_images(config, classes: list[str], data: str | None, split: str | None, prepare_data):
    """(images, categories {id: name}, split name, run label -> data category id) to evaluate a box task's run on.

    The run's own data and split by default (`prepare_data(config)`; test when it has one, else val); else `data`
    (its test split, else val, else train; all images when it has no splits); or the named `split`. Categories are
    matched by name, so a dataset that numbers them differently still scores correctly.
    """
    from pixelforge.data.boxes.source import read_boxes
    from pixelforge.runs.files import held_out_split

    source = prepare_data(config)[0] if data is None else read_boxes(data)
    name = held_out_split(source, split, own_data=data is None)
    chosen = source.images if name == "all" else source.split(name)
    if not chosen:
        raise PixelforgeError(f"{source.origin}: no images in split {name!r}")
    by_name = {n: i for i, n in source.categories.items()}
    unknown = sorted(set(by_name) - set(classes))
    if unknown:
        raise PixelforgeError(f"{source.origin}: category {unknown[0]!r} is not one the model knows "
                              f"({', '.join(classes)})")
    # Classes the data lacks keep the run's id: their detections are then false positives for no category.
    mapping = [by_name.get(c, -1 - i) for i, c in enumerate(classes)]
    return chosen, source.categories, name, mapping


def targets_in_fp32(module: nn.Module, args: tuple):
    """A forward pre-hook: training targets' boxes back in float32. Under `--precision bf16-mixed` Fabric casts every
    float input to bf16, targets included: Mask R-CNN refuses bf16 boxes, and bf16's 8-bit mantissa would round a
    box at x = 300 to a multiple of 2 pixels for every other detector."""
    if len(args) < 2 or not isinstance(args[1], (list, tuple)):
        return None
    targets = [{k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in t.items()}
               for t in args[1]]
    return (args[0], targets, *args[2:])


def box_task_setup(cfg, source, classes, fabric, progress, model, make_task, train_images, val_images,
                   checkpoint: dict):
    """The part of a setup every box task shares: datasets decoded once into RAM, the fine-tuning strategy, gradual
    unfreezing and optimizer groups around an already-built `model`, as a `TaskSetup`.

    `make_task(val_images)` builds the task from the validation images that decoded (its ground truth).
    """
    from pixelforge.data.boxes.dataset import BoxDataset, box_collate
    from pixelforge.data.boxes.transforms import eval_box_transform, train_box_transform
    from pixelforge.engine.setup import TaskSetup
    from pixelforge.engine.threads import single_threaded
    from pixelforge.tasks.common.finetune import gradual_unfreezing_hook

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
    model.register_forward_pre_hook(targets_in_fp32)
    apply_strategy(model, cfg.strategy, 0, cfg.unfreeze_every)
    hooks = ([gradual_unfreezing_hook(model, cfg.unfreeze_every, progress.info, "encoder")]
             if cfg.strategy == "gradual" else [])

    return TaskSetup(
        task=make_task(val_set.images), model=model, trained=model, train_data=train_set, val_data=val_set,
        param_groups=lambda lr: param_groups(model, cfg.strategy, lr, cfg.backbone_lr_mult, cfg.weight_decay),
        n_train=len(train_set), n_val=len(val_set), collate_fn=box_collate, workers=cfg.workers or 0,
        hooks=hooks, unreadable=unreadable,
        extra_checkpoint={"classes": classes, "category_ids": ids, **checkpoint},
    )
