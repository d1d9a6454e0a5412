"""The machine line of a benchmark table: cores, CPU model and flags, load, measured fp32 matmul speed."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from pixelforge.engine.threads import torch_threads

FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                     "amx_int8")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    model, flags = platform.machine(), set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    return model, [f for f in FLAGS_OF_INTEREST if f in flags]


def matmul_gflops(threads: int = 2, size: int = 1024, seconds: float = 0.5) -> float:
    """Best fp32 GEMM rate over repeated `size`^3 products on `threads` PyTorch threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    with torch_threads(threads):
        torch.mm(a, b)  # warm-up: oneDNN/MKL pick their kernels once
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_info() -> dict:
    model, flags = cpu_model_and_flags()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "flags": flags,
        "matmul_gflops_2_threads": round(matmul_gflops(2), 1),
        "load_average_1min": load_average(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def machine_line(info: dict) -> str:
    return (f"machine: {info['cores']} cores ({info['torch_threads']} torch threads), {info['cpu']}; "
            f"flags {' '.join(info['flags']) or 'none of interest'}; 2-thread fp32 matmul "
            f"{info['matmul_gflops_2_threads']:.0f} GFLOP/s; load average {info['load_average_1min']}; "
            f"torch {info['torch']}")
