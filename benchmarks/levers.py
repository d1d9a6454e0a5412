"""L1-L11, one lever at a time: what each speed-up inside pixelforge gives here, and why some are not used.

Each row compares the same work with and without one lever, alternating in this process:
    L1  frozen-backbone features: eager PyTorch fp32 (channels_last) -> ONNX Runtime fp32          (kept: linear)
    L2  frozen-backbone features: eager fp32 -> eager bf16 autocast                               (not kept)
    L3  per-image train transform: all PyTorch threads -> one thread                          (kept: all paths)
    L4  full fine-tuning step: default (contiguous) layout -> channels_last                        (kept: full)
    L5  full fine-tuning step: fp32 -> bf16 autocast, every conv in bf16, channels_last            (not kept)
    L6  full fine-tuning step: fp32 -> bf16 autocast with depthwise convs in fp32      (kept: full, BF16 CPUs)
    L7  full fine-tuning step: fp32 eager -> torch.compile                                    (opt-in: --compile)
    L8  full fine-tuning step: bf16 (depthwise fp32) eager -> torch.compile                      (not default)
    L9  full fine-tuning step: bf16 (depthwise fp32) -> + "same" padding fused with the cast   (kept: end to end)
    L10 full fine-tuning step: L9's -> + ReLU6 out of place                                     (kept: end to end)
    L11 full fine-tuning step, pixelforge's default, each side in a fresh process: glibc malloc's defaults ->
        large freed blocks kept for reuse (`engine/cpu_memory.py`)                           (kept: every run)
L7 and L8 are left out of the smoke run: each compiles Lite0 (~1 min on 2 cores).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from benchmarks.pairs import Row, alternate, fill
from benchmarks.workload import Workload


def _rate(fn, batches: list, rounds: int = 1) -> float:
    fn(batches[0])  # warm-up
    started, images = time.perf_counter(), 0
    for _ in range(rounds):
        for batch in batches:
            fn(batch)
            images += len(batch)
    return round(images / (time.perf_counter() - started), 2)


def _val_images(work: Workload, batch: int, limit: int) -> list[torch.Tensor]:
    from pixelforge.data.dataset import ImageDataset
    from pixelforge.data.transforms import decode_size, eval_transform

    dataset = ImageDataset(work.val_samples[:limit], {c: i for i, c in enumerate(work.classes)},
                           decode_size(work.img_size, 0.875), eval_transform(work.img_size, (0.5,) * 3, (0.5,) * 3))
    dataset.preload()
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    return list(images.split(batch))


def feature_rows(work: Workload, repeats: int, say) -> list[Row]:
    from pixelforge.tasks.classify.features import FeatureExtractor
    from pixelforge.models.classifier import build_classifier

    backbone = build_classifier("tf_efficientnet_lite0", len(work.classes)).backbone.eval()
    backbone = backbone.to(memory_format=torch.channels_last)
    batches = _val_images(work, 64, work.lever_images)
    eager = FeatureExtractor(backbone, engine="eager")
    started = time.perf_counter()
    fast = FeatureExtractor(backbone, engine="auto")
    fast(batches[0])
    export_s = round(time.perf_counter() - started, 2)

    def bf16(x):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return backbone(x.contiguous(memory_format=torch.channels_last)).float()

    reference = eager(batches[0])
    errors = {"onnxruntime": float((fast(batches[0]) - reference).abs().max()),
              "bf16": float((bf16(batches[0]) - reference).abs().max())}
    rows = []
    levers = [("L1", f"ONNX Runtime ({fast.name})", fast, True), ("L2", "bf16 autocast", bf16, False)]
    for case, name, fn, kept in levers:
        say(f"{case} backbone features: eager fp32 vs {name}")
        runs = alternate(lambda: {"images_per_s": _rate(eager, batches)},
                         lambda fn=fn: {"images_per_s": _rate(fn, batches)}, repeats, say)
        measure = f"backbone features, img/s ({work.img_size} px, batch {min(64, work.lever_images)})"
        row = Row(case, measure, "img/s", True, "eager fp32 channels_last", name)
        fill(row, runs, lambda r: r["images_per_s"])
        key = "onnxruntime" if case == "L1" else "bf16"
        row.details = {"max_abs_difference_from_eager": errors[key], "feature_scale": float(reference.abs().max())}
        if case == "L1":
            row.details["export_and_check_s"] = export_s
        row.note = ("kept" if kept else "not kept") + f"; max |diff| from eager {errors[key]:.1e}"
        rows.append(row)
    return rows


def transform_row(work: Workload, repeats: int, say) -> Row:
    from pixelforge.data.dataset import ImageDataset
    from pixelforge.data.transforms import decode_size, resolve_augment, train_transform
    from pixelforge.engine.threads import single_threaded

    transform = train_transform(work.img_size, (0.5,) * 3, (0.5,) * 3, resolve_augment("light"))
    dataset = ImageDataset(work.train_samples[:work.lever_images], {c: i for i, c in enumerate(work.classes)},
                           decode_size(work.img_size, 0.875))
    dataset.preload()
    images = [dataset.pixels(i) for i in range(len(dataset))]
    one = single_threaded(transform)

    def rate(fn):
        started = time.perf_counter()
        for image in images:
            fn(image)
        return {"images_per_s": round(len(images) / (time.perf_counter() - started), 1)}

    say("L3 per-image train transform: all torch threads vs one")
    runs = alternate(lambda: rate(transform), lambda: rate(one), repeats, say)
    row = Row("L3", "train transform, img/s (main process)", "img/s", True,
              f"{torch.get_num_threads()} torch threads", "1 thread")
    row.note = "kept"
    return fill(row, runs, lambda r: r["images_per_s"])


def make_stepper(base: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, variant: str, steps: int):
    """A callable timing `steps` SGD steps of a copy of `base`; returns {"images_per_s": ...}.

    variant: "fp32 contiguous", "fp32 channels_last", "bf16 ...", "bf16, depthwise fp32", "... compiled",
    "..., fused padding", "..., relu6 out of place".
    """
    from pixelforge.engine.exact_speedups import fuse_same_padding, keep_depthwise_fp32, relu6_out_of_place

    model = copy.deepcopy(base).train()
    inputs = x
    if "contiguous" not in variant:
        model, inputs = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    if "depthwise fp32" in variant:
        keep_depthwise_fp32(model)
    if "fused padding" in variant:
        fuse_same_padding(model)
    if "relu6 out of place" in variant:
        relu6_out_of_place(model)
    forward = torch.compile(model) if "compiled" in variant else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    bf16 = variant.startswith("bf16")

    def step(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(forward(batch), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return lambda: {"images_per_s": _rate(step, [inputs] * steps)}  # the warm-up step compiles


DEFAULT_STEP = "bf16, depthwise fp32, fused padding, relu6 out of place"  # what `pixelforge train --strategy full` runs


def fresh_process_rate(work: Workload, variant: str, reuse_freed_memory: bool) -> dict:
    """The step's img/s in a new interpreter: malloc settings are process-wide, so each side needs its own."""
    command = [sys.executable, "-m", "benchmarks.fresh_step", "--variant", variant, "--batch", str(work.lever_batch),
               "--img-size", str(work.img_size), "--steps", str(work.lever_steps),
               "--classes", str(len(work.classes))]
    if reuse_freed_memory:
        command.append("--reuse-freed-memory")
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_step_rows(work: Workload, repeats: int, say) -> list[Row]:
    from benchmarks.plain import plain_model
    from pixelforge.engine.cpu_memory import reuse_freed_memory

    base = plain_model(len(work.classes))
    x = torch.randn(work.lever_batch, 3, work.img_size, work.img_size)
    y = torch.randint(0, len(work.classes), (work.lever_batch,))

    def stepper(variant: str):
        return make_stepper(base, x, y, variant, work.lever_steps)

    levers = [("L4", "fp32 contiguous", "fp32 channels_last", "kept: full"),
              ("L5", "fp32 channels_last", "bf16 channels_last", "not kept"),
              ("L6", "fp32 channels_last", "bf16, depthwise fp32", "kept: full, on BF16 CPUs")]
    if work.compile_levers:
        levers += [("L7", "fp32 channels_last", "fp32 channels_last compiled", "--compile"),
                   ("L8", "bf16, depthwise fp32", "bf16, depthwise fp32 compiled", "not default")]
    levers += [("L9", "bf16, depthwise fp32", "bf16, depthwise fp32, fused padding", "kept: end to end"),
               ("L10", "bf16, depthwise fp32, fused padding", DEFAULT_STEP, "kept: end to end")]
    rows = []
    torch.set_flush_denormal(True)  # both sides, as `pixelforge train` does (engine/train.py)
    reuse_freed_memory()  # likewise; L11 measures what it gives, in fresh processes
    for case, before, after, note in levers:
        say(f"{case} full fine-tuning step: {before} vs {after}")
        runs = alternate(stepper(before), stepper(after), repeats, say)
        row = Row(case, f"training step, img/s (batch {work.lever_batch}, {work.img_size} px)", "img/s", True,
                  before, after)
        row.note = note
        rows.append(fill(row, runs, lambda r: r["images_per_s"]))
    say(f"L11 full fine-tuning step ({DEFAULT_STEP}), each side in a fresh process: glibc malloc default vs reuse")
    runs = alternate(lambda: fresh_process_rate(work, DEFAULT_STEP, False),
                     lambda: fresh_process_rate(work, DEFAULT_STEP, True), repeats, say)
    row = Row("L11", f"training step, img/s (batch {work.lever_batch}, {work.img_size} px)", "img/s", True,
              "malloc default", "malloc keeps freed blocks")
    row.note = "kept: every training run"
    rows.append(fill(row, runs, lambda r: r["images_per_s"]))
    return rows


def run(work: Workload, repeats: int, say=print) -> list[Row]:
    return [*feature_rows(work, repeats, say), transform_row(work, repeats, say), *train_step_rows(work, repeats, say)]
