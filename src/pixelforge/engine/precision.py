"""Training precision: what `precision: auto` picks, and the CPU bf16 policy for depthwise convolutions.

Measured on a 2-core Xeon with AVX512-BF16/AMX (benchmarks L5, L6; Lite0 full fine-tuning step, batch 32, 224 px):
    fp32 channels_last                                      1.0x
    bf16 autocast, every convolution in bf16                ~1.2x   oneDNN's bf16 *depthwise* backward is slow:
                                                                    stride-2 grad-input ~4x, 5x5 grad-weight ~5x
                                                                    slower than fp32 on the same tensors
    bf16 autocast, depthwise convolutions kept in fp32      ~1.7x   pointwise convs on AMX, half the memory traffic
                                                                    in batch-norm and activations, fast fp32
                                                                    depthwise kernels
So on such a CPU, `auto` trains end to end in bf16 mixed precision with depthwise convolutions in fp32. On a CPU
without native BF16 (emulated bf16 is slower than fp32) it stays fp32; on CUDA it is the usual AMP (bf16 where the
GPU has it, else fp16 with loss scaling). Parameters and optimizer state stay fp32 in every case (autocast). The
depthwise wrapper itself is `engine/exact_speedups.py`.

Each task says whether it was measured in bf16 (`Task.bf16_measured`, `Task.bf16_reason`): end-to-end
classification (a frozen backbone, `linear`, trains its head on cached fp32 features) and segmentation (U-Net on
Lite0, 128 px, batch 8: 26.0 -> 37.3 img/s per step) and fast style networks (their default run: 1.38x less CPU,
the same losses) switch automatically; detection and instance segmentation have not been measured in bf16 yet, so
their `auto` is fp32.
"""

from __future__ import annotations

from typing import Callable

import torch


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the instructions oneDNN's bf16 kernels need to beat fp32."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private but stable since torch 2.3
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def resolve_precision(precision: str, *, fp32_reason: str | None, accelerator: str,
                      probe: Callable[[], tuple[str, str]] | None = None) -> tuple[str, str]:
    """The Fabric precision for a run ("32", "bf16-mixed" or "16-mixed") and the reason the log gives.

    `fp32_reason` is the task's word (`Task.bf16_reason`): why this run must stay fp32 under `auto` (bf16 not
    measured for the task, or a path that trains on cached fp32 features), or None when mixed precision may be used.
    `probe` (engine/precision_probe.py): on a CPU with native BF16, measure this model both ways and take the
    faster; without one, native BF16 means bf16.
    """
    if precision != "auto":
        return precision, "as set"
    if fp32_reason:
        return "32", fp32_reason
    on_cuda = accelerator == "cuda" or (accelerator == "auto" and torch.cuda.is_available())
    if on_cuda:
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", "auto: CUDA with bf16"
        return "16-mixed", "auto: CUDA without bf16, fp16 with loss scaling"
    if accelerator in ("auto", "cpu") and cpu_has_native_bf16():
        if probe is not None:
            return probe()
        return "bf16-mixed", "auto: this CPU has native BF16 (AVX512-BF16/AMX); depthwise convolutions stay fp32"
    return "32", "auto: no native BF16 on this device"
