"""`precision: auto` on a CPU with native BF16 decides by measuring, once per machine and model.

Native BF16 is necessary but not sufficient: the bf16 policy (engine/precision.py: autocast, depthwise convolutions
kept in fp32) was tuned on Xeons with AMX, where it trains Lite0 ~1.2-1.7x faster than fp32. On CPUs with
AVX512-BF16 but no AMX (AMD EPYC, for one) a user measured bf16 at half fp32's speed at 64 px on a busy machine and
faster on an idle one. A rule per CPU family would be a guess for the CPUs nobody here has, so the first end-to-end
run of a model at a size times a few training steps both ways on this machine, and the answer is kept in
`$PIXELFORGE_HOME/precision-probe.json` under the CPU's name, the torch version, the model, the image size, the
batch and the threads. bf16 is chosen only when it is at least `MARGIN` faster: a tie goes to fp32, which is exact.
Delete the file (or the entry) to measure again; `--precision 32|bf16-mixed` skips the probe.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

log = logging.getLogger("pixelforge")

MARGIN = 1.05  # bf16 must be this much faster than fp32 to be chosen
PROBE_FILE = "precision-probe.json"


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def probe_key(model_name: str, img_size: int, batch: int) -> str:
    return f"{cpu_name()}|torch {torch.__version__}|{model_name}|{img_size}px|batch {batch}|{torch.get_num_threads()} threads"


def step_images_per_s(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool, steps: int = 2) -> float:
    """Best images/s over `steps` timed SGD training steps (after one warm-up step), fp32 or bf16 autocast."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    best = float("inf")
    for step in range(steps + 1):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(x).float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first step allocates and picks kernels
            best = min(best, time.perf_counter() - started)
    return len(x) / best


def measure(make_model: Callable[[], nn.Module], img_size: int, batch: int, num_classes: int) -> dict:
    """Training images/s of fresh models in fp32 and in the bf16 policy, on random inputs of the run's shape."""
    from pixelforge.engine.exact_speedups import apply_exact_speedups

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, img_size, img_size, generator=generator).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,), generator=generator)
    results = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        model = make_model().to(memory_format=torch.channels_last).train()
        apply_exact_speedups(model, depthwise_fp32=bf16)
        results[f"{name}_images_per_s"] = round(step_images_per_s(model, x, y, bf16), 2)
    return results


def probe_precision(make_model: Callable[[], nn.Module], model_name: str, img_size: int, batch: int,
                    num_classes: int, home: Path) -> tuple[str, str]:
    """("bf16-mixed" or "32", the reason for the log), measured once and then read from `home`/precision-probe.json."""
    from pixelforge.runs.folder import atomic_write_bytes

    path = Path(home) / PROBE_FILE
    key = probe_key(model_name, img_size, batch)
    try:
        cache = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        cache = {}  # a damaged cache is measured again and rewritten
    entry = cache.get(key)
    measured_now = entry is None
    if measured_now:
        started = time.perf_counter()
        entry = measure(make_model, img_size, batch, num_classes)
        entry["seconds"] = round(time.perf_counter() - started, 1)
        entry["when"] = time.strftime("%Y-%m-%d %H:%M")
        cache[key] = entry
        try:
            atomic_write_bytes(path, lambda handle: handle.write(json.dumps(cache, indent=1).encode()))
        except OSError as exc:
            log.debug("precision probe not cached (%s)", exc)
    fp32, bf16 = entry["fp32_images_per_s"], entry["bf16_images_per_s"]
    choice = "bf16-mixed" if bf16 >= MARGIN * fp32 else "32"
    how = f"measured now in {entry['seconds']} s" if measured_now else f"measured {entry['when']}, {path}"
    return choice, (f"auto: a training step of {model_name} at {img_size} px ran {bf16:.1f} img/s in bf16 vs "
                    f"{fp32:.1f} in fp32 on this CPU ({how}); "
                    + ("bf16 with depthwise convolutions in fp32" if choice != "32" else "fp32"))
