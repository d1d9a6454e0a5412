"""Contrastive image-text training (CLIP, Radford et al. 2021) as an engine task: data, tokenizer, cached image
features or end-to-end images, open_clip's `ClipLoss`, and validation by retrieval recall@1.

Batches are (images or pooled trunk features, token ids [B, L], image index [B]). With `--strategy linear` (the
default) the pretrained trunk is frozen, so its pooled features are computed once and only the image projection
and the text tower train (the `cached-features` path, LiT's "locked image" tuning, Zhai et al. 2022); `full` and
`gradual` fine-tune the trunk on images. Each epoch pairs every image with one of its captions drawn at random,
so an image never meets itself as a negative in the same batch.
"""

from __future__ import annotations

import math
import time

import torch
from torch.utils.data import Dataset

from pixelforge.data.captions.tokenizer import Tokenizer
from pixelforge.tasks.clip.run import encode_captions

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clips the learned temperature at 100 (section 2.5)
VAL_BATCH = 512  # the validation loss's batches (of the whole set, gathered across processes)


def run_templates(cfg) -> list[str]:
    """The run's zero-shot prompt ensemble: `templates_file`'s lines, or the shapes caption wordings."""
    from pixelforge.models.prompts import read_templates
    from pixelforge.tasks.clip.config import SHAPES_TEMPLATES

    return read_templates(cfg.templates_file, SHAPES_TEMPLATES, "--templates-file") if cfg.templates_file else list(SHAPES_TEMPLATES)


class ImageCaptions(Dataset):
    """(input [i], tokens of one caption of image i, i): a random caption in training, the first in validation."""

    def __init__(self, inputs: torch.Tensor, tokens: list[torch.Tensor], random_caption: bool):
        self.inputs, self.tokens, self.random_caption = inputs, tokens, random_caption

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int):
        captions = self.tokens[i]
        k = int(torch.randint(len(captions), ())) if self.random_caption else 0
        return self.inputs[i], captions[k], i


def recall_at_1(similarity: torch.Tensor, same: torch.Tensor) -> tuple[float, float]:
    """Hits of image->text and text->image retrieval; `same[i, j]`: caption j describes image i as well as its own
    (identical texts: on the shapes set two images can have the same caption, and either answer is right)."""
    image_to_text = same[torch.arange(len(similarity)), similarity.argmax(1)].float().sum()
    text_to_image = same[similarity.argmax(0), torch.arange(len(similarity))].float().sum()
    return float(image_to_text), float(text_to_image)


def training_loss(rank: int, world_size: int):
    """open_clip's `ClipLoss` for a training step. Under DDP (world_size > 1) it gathers every process's features,
    as open_clip's training script does with its local-loss and gather-with-grad options, so the negatives are the
    whole global batch: W processes x B pairs is the objective of one process with W*B, not W separate B-pair ones.

    local_loss: each process scores its B images (texts) against all W*B texts (images), B x W*B logits instead of
    the full W*B x W*B on every process; the mean of the processes' losses (what the engine logs) is the loss over
    the whole batch. gather_with_grad: the gathered features keep their gradients, so each process's features are
    also trained as the others' negatives, and DDP's average of the gradients is the single-process gradient of that
    loss. Without it, with local_loss, the other processes' rows would be missing from each feature's gradient."""
    from open_clip.loss import ClipLoss

    if world_size <= 1:
        return ClipLoss()
    return ClipLoss(local_loss=True, gather_with_grad=True, rank=rank, world_size=world_size)


class ClipStep:
    """The engine's step object (engine/setup.py)."""

    monitor, monitor_mode = "val_recall1", "max"

    def __init__(self, tokenizer: Tokenizer, val_captions: list[str], rank: int = 0, world_size: int = 1):
        from open_clip.loss import ClipLoss

        self.tokenizer, self.val_captions = tokenizer, val_captions
        self.loss = ClipLoss()  # validation: on the gathered embeddings, in batches of VAL_BATCH
        self.train_loss = training_loss(rank, world_size)

    @staticmethod
    def freeze_frozen_norms(model) -> None:
        """A frozen trunk keeps its batch-norm statistics after `model.train()` (end-to-end paths only)."""
        if hasattr(model, "pretrained_module"):
            from pixelforge.models.finetune import freeze_frozen_norms

            freeze_frozen_norms(model)

    def transfer_batch(self, batch, fabric):
        inputs, tokens, index = batch
        return fabric.to_device(inputs), fabric.to_device(tokens), index

    def losses(self, model, inputs, tokens, loss=None):
        # One forward call (open_clip's CLIP.forward): under DDP a method called beside it is refused by Fabric.
        images, texts, scale = model(inputs, tokens)[:3]
        return (loss or self.loss)(images, texts, scale), images, texts

    def training_step(self, model, batch) -> dict:
        inputs, tokens, _ = batch
        # open_clip clamps after each optimizer step; clamping before the next forward is the same for every step
        # but the last, and keeps the step object free of optimizer hooks.
        with torch.no_grad():
            model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        loss, _, _ = self.losses(model, inputs, tokens, self.train_loss)
        count = len(tokens)
        return {"loss": loss, "count": count, "logit_scale": model.logit_scale.detach().exp()}

    @torch.no_grad()
    def validate(self, model, batches, fabric) -> dict:
        """ClipLoss over the validation images in batches of `VAL_BATCH` (in the set's order), and retrieval
        recall@1 among all of them, with each image's first caption.

        Under DDP each process embeds its share (engine/samplers.py: none twice) and the embeddings are gathered
        (engine/gather.py) before anything is scored: recall among one process's share is an easier retrieval than
        among every image, and a contrastive loss depends on which pairs share a batch, so both are computed on
        the whole set, in its own order, as one process computes them."""
        from pixelforge.engine.gather import gather_rows

        images, texts, indices, scale = [], [], [], torch.zeros(())
        for inputs, tokens, index in batches:
            image, text, scale = model(inputs, tokens)[:3]
            images.append(image.float())
            texts.append(text.float())
            indices.append(torch.as_tensor(index, device=image.device))
        empty = torch.zeros(0, 0, device=fabric.device)
        order = gather_rows(torch.cat(indices) if indices else empty[:, 0].long(), fabric).argsort().cpu()
        images = gather_rows(torch.cat(images) if images else empty, fabric).cpu()[order]
        texts = gather_rows(torch.cat(texts) if texts else empty, fabric).cpu()[order]
        scale = float(fabric.all_reduce(torch.as_tensor(float(scale), device=fabric.device), reduce_op="max"))
        n = len(images)
        loss = sum(float(self.loss(images[k:k + VAL_BATCH], texts[k:k + VAL_BATCH], torch.tensor(scale)))
                   * len(images[k:k + VAL_BATCH]) for k in range(0, n, VAL_BATCH))
        captions = [self.val_captions[i] for i in range(n)]
        same = torch.tensor([[a == b for b in captions] for a in captions])
        image_to_text, text_to_image = recall_at_1(images @ texts.T, same) if n else (0.0, 0.0)
        n = max(n, 1)
        return {"val_loss": loss / n, "val_recall1_image_to_text": image_to_text / n,
                "val_recall1_text_to_image": text_to_image / n,
                "val_recall1": (image_to_text + text_to_image) / (2 * n)}


def build_setup(cfg, source, classes, fabric, progress):
    """The CLIP model, its datasets (pooled trunk features cached when the trunk is frozen) and the step object."""
    from pixelforge.data.images import load_rgb
    from pixelforge.engine.setup import TaskSetup
    from pixelforge.engine.threads import torch_threads
    from pixelforge.models.clip import build_clip, clip_model_config
    from pixelforge.models.finetune import apply_strategy, param_groups
    from pixelforge.tasks.clip.run import preprocessor

    train, val = source.split("train"), source.split("val")
    tokenizer = Tokenizer.fit([c for i in train for c in i.captions], cfg.min_word_count)
    length = cfg.max_caption_words + 2
    model_cfg = clip_model_config(cfg.model, len(tokenizer), length, cfg.embed_dim, cfg.text_width, cfg.text_layers,
                                  cfg.text_heads, cfg.img_size, cfg.image_proj)
    model = build_clip(model_cfg, cfg.model, cfg.weights)
    preprocess, mean, std = preprocessor(cfg.model, cfg.img_size)
    advance, close = progress.counter("decoding images", len(train) + len(val))
    inputs = {}
    with torch_threads(1):  # per-image transforms: one thread is faster (engine/threads.py says why)
        for name, images in (("train", train), ("val", val)):
            tensors = []
            for image in images:
                tensors.append(preprocess(load_rgb(image.path)))
                advance(1)
            inputs[name] = torch.stack(tensors)
    close()
    model.to(fabric.device)
    cached = cfg.strategy == "linear"
    extraction = None
    if cached:
        started = time.perf_counter()
        trunk = model.visual.trunk.eval()
        with torch.no_grad():
            for name in inputs:
                inputs[name] = torch.cat([trunk(inputs[name][k:k + 128].to(fabric.device)).cpu()
                                          for k in range(0, len(inputs[name]), 128)])
        extraction = round(time.perf_counter() - started, 3)
        progress.info(f"pooled {cfg.model} features ({inputs['train'].shape[1]}) of {len(train) + len(val)} images "
                      f"in {extraction:.1f} s; the projection and the text tower train on them")
    tokens = {name: [encode_captions(tokenizer, i.captions, length) for i in images]
              for name, images in (("train", train), ("val", val))}
    train_set = ImageCaptions(inputs["train"], tokens["train"], random_caption=True)
    val_set = ImageCaptions(inputs["val"], tokens["val"], random_caption=False)
    for param in model.parameters():
        param.requires_grad_(True)
    apply_strategy(model, cfg.strategy, 0, cfg.unfreeze_every)
    hooks = []
    if cfg.strategy == "gradual":
        from pixelforge.tasks.common.finetune import gradual_unfreezing_hook

        hooks.append(gradual_unfreezing_hook(model, cfg.unfreeze_every, progress.info, "image trunk"))
    step = ClipStep(tokenizer, [i.captions[0] for i in val], fabric.global_rank, fabric.world_size)
    progress.info(f"{len(train)} training images with {sum(len(i.captions) for i in train)} captions; "
                  f"vocabulary {len(tokenizer)} words")
    return TaskSetup(
        task=step, model=model, trained=model, train_data=train_set, val_data=val_set,
        n_train=len(train_set), n_val=len(val_set), workers=0,
        param_groups=lambda lr: param_groups(model, cfg.strategy, lr, cfg.backbone_lr_mult, cfg.weight_decay),
        val_batch_size=VAL_BATCH, path="cached-features" if cached else "end-to-end",
        speed_column="head_images_per_s" if cached else "images_per_s", feature_extraction_seconds=extraction,
        hooks=hooks, extra_checkpoint={"task": "clip", "vocab": tokenizer.vocab, "min_count": tokenizer.min_count,
                                       "model_cfg": model_cfg, "mean": list(mean), "std": list(std),
                                       "templates": run_templates(cfg)},
    )
