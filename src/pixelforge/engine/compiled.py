"""`--compile`: torch.compile for the full fine-tuning step (opt-in).

Why opt-in: measured on 2 CPU cores (benchmarks L7), compiling a Lite0 training step (batch 32, 224 px) gives
~1.3x over eager fp32 channels_last, because Inductor fuses the memory-bound batch-norm/activation/padding passes.
But the default full fine-tuning path on a BF16 CPU is already bf16 mixed precision (engine/precision.py), which
halves that memory traffic, and compiling it measured no faster, while the first compile costs ~55 s (~5 s later,
from Inductor's on-disk cache). So the default stays eager; `--compile` is for long fp32 runs (or GPUs).

Only full batches in train mode go through the compiled copy: the last, smaller batch of an epoch and validation
(eval mode) stay eager, so nothing is compiled twice. The compiled copy shares the model's parameters: checkpoints,
the optimizer and evaluation see the same module as without it.
"""

from __future__ import annotations

import logging
import os
import shutil

import torch
from torch import nn

log = logging.getLogger("pixelforge")


def compile_decision(wanted: bool, *, strategy: str, world_size: int) -> tuple[bool, str]:
    """Whether to compile the training step, and the reason the log gives."""
    if not wanted:
        return False, "off (default; --compile turns it on)"
    if strategy != "full":
        # Gradual unfreezing changes which parameters need gradients every few epochs: each change recompiles.
        return False, f"off (strategy {strategy}: only full fine-tuning is compiled)"
    if world_size > 1:
        return False, "off (DDP runs stay eager)"
    if not _cpp_compiler():
        return False, "off (no C++ compiler found for Inductor; install g++ or set CXX)"
    return True, "on (--compile)"


def _cpp_compiler() -> str | None:
    # Inductor builds its CPU kernels with $CXX, else g++ (torch/_inductor/cpp_builder.py); CUDA kernels need none.
    return shutil.which(os.environ.get("CXX", "g++")) or (torch.cuda.is_available() and "triton") or None


class CompiledTrainingForward:
    """`forward(model, x)`: the compiled model for full training batches, the eager model for anything else.

    If compiling fails on the first batch (a missing toolchain, an unsupported layer), the run goes on eager and
    the log says why, rather than losing the run.
    """

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.failed = False
        self._compiled: nn.Module | None = None
        self._source: nn.Module | None = None
        self._proven = False  # a full compiled step has run (forward and backward)

    def __call__(self, model: nn.Module, x: torch.Tensor):
        if self.failed or not model.training or x.shape[0] != self.batch_size:
            return model(x)
        if self._compiled is None or self._source is not model:
            self._compiled, self._source = torch.compile(model, dynamic=False), model
        if self._proven:
            return self._compiled(x)
        try:
            out = self._compiled(x)
        except Exception as exc:  # noqa: BLE001 - any compile failure: fall back to eager, keep training
            self.failed = True
            log.warning("torch.compile failed (%s); training eager", str(exc).splitlines()[0][:200])
            return model(x)
        self._proven = True
        return out
