"""What a NAS trial's second objective measures: latency of the network on this machine (median of repeated ONNX
Runtime runs at batch 1, one thread, as a phone-sized deployment runs it) or its FLOPs."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from pixelforge.deploy.export.onnx import export_traced
from pixelforge.models.catalog import count_flops


def onnx_latency_ms(model: torch.nn.Module, img_size: int, runs: int = 50, warmup: int = 10) -> float:
    """Median milliseconds of one batch-1 inference in ONNX Runtime (single-threaded: stable on a shared machine)."""
    import numpy as np
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path = export_traced(model.eval(), (torch.zeros(1, 3, img_size, img_size),), Path(tmp) / "m.onnx",
                             ["image"], ["logits"], opset=17)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = {"image": np.zeros((1, 3, img_size, img_size), dtype=np.float32)}
    for _ in range(warmup):
        session.run(None, x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, x)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure(model: torch.nn.Module, img_size: int) -> dict:
    """{"latency_ms", "mflops", "params_m"} of `model` at `img_size`."""
    model = model.eval()
    with torch.no_grad():
        mflops = count_flops(model, img_size) * 1e3
        latency = onnx_latency_ms(model, img_size)
    return {"latency_ms": round(latency, 4), "mflops": round(mflops, 3),
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 4)}
