"""Captioning as an engine task: data, tokenizer, cached encoder features or end-to-end images, the SAT loss, and
validation by BLEU-4 of greedy captions.

Batches are (images or features, token ids [B, L], lengths [B], image ids [B]); `transfer_batch` moves the first
three. With `--strategy linear` (the default) the pretrained encoder is frozen, so its feature maps are computed
once and the decoder trains on them (the `cached-features` path); `full` and `gradual` fine-tune it on images.
The loss is label-smoothed cross-entropy over the words plus the doubly stochastic attention penalty
lambda * mean_i (1 - sum_t alpha_ti)^2 (Xu et al. 2015, eq. 14), which pushes the decoder to look at every place
of the image at some point of the caption instead of staring at one.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from pixelforge.data.captions.tokenizer import Tokenizer
from pixelforge.metrics.captions import attribute_match, bleu_from_statistics, bleu_statistics


def prepare_data(cfg):
    """(source, []) with every image in train/val/test; captioning has no classes."""
    from pixelforge.tasks.common.captions import read_caption_source

    return read_caption_source(cfg), []


def load_images(paths: list[str], size: int, mean, std) -> torch.Tensor:
    from pixelforge.data.images import load_rgb
    from pixelforge.deploy.runtime.caption_search import caption_input

    return torch.from_numpy(np.concatenate([caption_input(load_rgb(p), size, mean, std) for p in paths]))


class CaptionPairs(Dataset):
    """(image or features [i], tokens padded to L, length, image id) for each (image, caption) pair."""

    def __init__(self, inputs: torch.Tensor, ids: list[int], token_lists: list[list[list[int]]], length: int,
                 pad: int, first_only: bool = False):
        self.inputs, self.ids = inputs, ids
        self.pairs = [(i, k) for i, tokens in enumerate(token_lists) for k in range(1 if first_only else len(tokens))]
        self.tokens = torch.full((len(self.pairs), length), pad, dtype=torch.long)
        self.lengths = torch.zeros(len(self.pairs), dtype=torch.long)
        for row, (i, k) in enumerate(self.pairs):
            ids_ = token_lists[i][k][:length]
            self.tokens[row, :len(ids_)] = torch.tensor(ids_)
            self.lengths[row] = len(ids_)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, row: int):
        i = self.pairs[row][0]
        return self.inputs[i], self.tokens[row], self.lengths[row], self.ids[i]


def caption_monitor(cfg) -> tuple[str, str]:
    """(metrics.csv column, mode) that picks best.ckpt: `monitor: bleu4` (greedy BLEU-4, max) or `loss` (min)."""
    return ("val_bleu4", "max") if cfg.monitor == "bleu4" else ("val_loss", "min")


class CaptionStep:
    """The engine's step object (engine/setup.py)."""

    def __init__(self, cfg, tokenizer: Tokenizer, references: dict, objects: dict):
        self.cfg, self.tokenizer, self.references, self.objects = cfg, tokenizer, references, objects
        self.monitor, self.monitor_mode = caption_monitor(cfg)

    @staticmethod
    def freeze_frozen_norms(model) -> None:
        """A frozen encoder keeps its batch-norm statistics after `model.train()` (end-to-end paths only)."""
        if hasattr(model, "pretrained_module"):
            from pixelforge.models.finetune import freeze_frozen_norms

            freeze_frozen_norms(model)

    def transfer_batch(self, batch, fabric):
        inputs, tokens, lengths, ids = batch
        return fabric.to_device(inputs), fabric.to_device(tokens), fabric.to_device(lengths), ids

    def losses(self, model, inputs, tokens, lengths, sampling: float = 0.0, word_dropout: float = 0.0):
        tokens = tokens[:, : int(lengths.max())]
        logits, alphas = model(inputs, tokens, sampling, word_dropout, self.tokenizer.unk)
        targets = tokens[:, 1:]
        words = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                ignore_index=self.tokenizer.pad, label_smoothing=self.cfg.label_smoothing)
        valid = (targets != self.tokenizer.pad).float()[:, :, None]
        penalty = ((1.0 - (alphas * valid).sum(1)) ** 2).mean()
        return words, penalty, logits, targets

    def training_step(self, model, batch) -> dict:
        inputs, tokens, lengths, _ = batch
        words, penalty, logits, targets = self.losses(model, inputs, tokens, lengths, self.cfg.scheduled_sampling,
                                                        self.cfg.word_dropout)
        with torch.no_grad():
            scored = targets != self.tokenizer.pad
            acc = ((logits.argmax(-1) == targets) & scored).sum() / scored.sum().clamp_min(1)
        count = len(tokens)
        return {"loss": words + self.cfg.attention_penalty * penalty, "count": count,
                "acc": acc, "attention_penalty": penalty.detach()}  # batch means: the engine weights by count

    @torch.no_grad()
    def validate(self, model, batches, fabric) -> dict:
        # val_loss: the mean over every scored word of the set (a sum and a count per batch), not a mean of the
        # batches' word means weighted by captions, which depended on which captions shared a batch, so on the
        # batch size and, under DDP, on how the captions were split between the processes.
        sums = torch.zeros(2, dtype=torch.float64)
        hypotheses, references, objects = [], [], []
        for inputs, tokens, lengths, ids in batches:
            _, _, logits, targets = self.losses(model, inputs, tokens, lengths)
            total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum",
                                    ignore_index=self.tokenizer.pad, label_smoothing=self.cfg.label_smoothing)
            sums += torch.tensor([float(total), float((targets != self.tokenizer.pad).sum())], dtype=torch.float64)
            out, _ = model.greedy(inputs, self.tokenizer.start, self.tokenizer.end, self.cfg.max_caption_words + 1)
            for image_id, row in zip(ids, out.tolist()):
                hypotheses.append(self.tokenizer.decode(row))
                references.append(self.references[int(image_id)])
                objects.append(self.objects.get(int(image_id)))
        stats = torch.tensor([*bleu_statistics(hypotheses, references), *sums.tolist(),
                              attribute_match(hypotheses, objects) * len(hypotheses) if all(objects) else 0.0,
                              len(hypotheses) if all(objects) else 0.0], dtype=torch.float64, device=fabric.device)
        stats = fabric.all_reduce(stats, reduce_op="sum").cpu().tolist()
        bleu = bleu_from_statistics(stats[:10])
        result = {"val_loss": stats[10] / max(stats[11], 1.0), **{f"val_{k}": v for k, v in bleu.items()}}
        if stats[13]:
            result["val_attribute_match"] = stats[12] / stats[13]
        return result


def build_setup(cfg, source, classes, fabric, progress, run_dir=None):
    """The captioner, its datasets (features cached for a frozen encoder) and the step object."""
    from pixelforge.engine.setup import TaskSetup
    from pixelforge.models.captioner import build_captioner
    from pixelforge.models.finetune import apply_strategy, param_groups

    train, val = source.split("train"), source.split("val")
    tokenizer = Tokenizer.fit([c for i in train for c in i.captions], cfg.min_word_count)
    model = build_captioner(cfg.model, len(tokenizer), cfg.weights, cfg.embed_dim, cfg.hidden_dim, cfg.attention_dim,
                            cfg.decoder_dropout, cfg.feature_stride, cfg.context_logits, cfg.init_state,
                            cfg.deep_output, cfg.lstm_input, cfg.attention, cfg.attention_query)
    mean, std = model.encoder.mean, model.encoder.std
    length = cfg.max_caption_words + 2
    advance, close = progress.counter("decoding images", len(train) + len(val))
    inputs = {}
    for name, images in (("train", train), ("val", val)):
        chunks = []
        for k in range(0, len(images), 64):
            chunks.append(load_images([i.path for i in images[k:k + 64]], cfg.img_size, mean, std))
            advance(len(chunks[-1]))
        inputs[name] = torch.cat(chunks)
    close()
    model.to(fabric.device)
    cached = cfg.strategy == "linear"
    extraction = None
    if cached:
        started = time.perf_counter()
        model.encoder.eval()
        with torch.no_grad():
            for name in inputs:
                inputs[name] = torch.cat([model.encoder(inputs[name][k:k + 128].to(fabric.device)).cpu()
                                          for k in range(0, len(inputs[name]), 128)])
        extraction = round(time.perf_counter() - started, 3)
        progress.info(f"encoder features ({inputs['train'].shape[1]} places x {inputs['train'].shape[2]} channels) "
                      f"of {len(train) + len(val)} images in {extraction:.1f} s; the decoder trains on them")
    tokens = {name: [[tokenizer.encode(c, cfg.max_caption_words) for c in i.captions] for i in images]
              for name, images in (("train", train), ("val", val))}
    train_set = CaptionPairs(inputs["train"], [i.id for i in train], tokens["train"], length, tokenizer.pad)
    val_set = CaptionPairs(inputs["val"], [i.id for i in val], tokens["val"], length, tokenizer.pad, first_only=True)
    for param in model.parameters():
        param.requires_grad_(True)
    apply_strategy(model, cfg.strategy, 0, cfg.unfreeze_every)
    step = CaptionStep(cfg, tokenizer, {i.id: i.captions for i in val}, {i.id: i.objects for i in val if i.objects})
    hooks = []
    if cfg.strategy == "gradual":
        from pixelforge.tasks.common.finetune import gradual_unfreezing_hook

        hooks.append(gradual_unfreezing_hook(model, cfg.unfreeze_every, progress.info, "encoder"))
    progress.info(f"{len(train_set)} training captions of {len(train)} images; vocabulary {len(tokenizer)} words")
    return TaskSetup(
        task=step, model=model, trained=model.decoder if cached else model, train_data=train_set, val_data=val_set,
        n_train=len(train_set), n_val=len(val_set), train_unit=f"captions of {len(train)} images", workers=0,
        param_groups=lambda lr: param_groups(model, cfg.strategy, lr, cfg.backbone_lr_mult, cfg.weight_decay),
        val_batch_size=256, path="cached-features" if cached else "end-to-end",
        speed_column="head_images_per_s" if cached else "images_per_s", feature_extraction_seconds=extraction,
        hooks=hooks, extra_checkpoint={"task": "caption", "decoder_format": 3, "vocab": tokenizer.vocab,
                                       "min_count": tokenizer.min_count, "mean": list(mean), "std": list(std)},
    )
