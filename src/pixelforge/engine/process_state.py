"""Process-wide settings a fit changes, saved before and put back after, so a fit leaves its caller as it found it.

Training sets some of these on purpose (flush-denormal, a SIGTERM handler, seeded RNGs, thread counts) and task
code may change others (default dtype, grad mode); a notebook or test that fits twice, or does anything after a
fit, must not inherit them. torch has no getter for flush-denormal, so it is read by experiment: with flushing on,
a subnormal float32 becomes zero when multiplied.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from contextlib import contextmanager

import numpy as np
import torch

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def flush_denormal_enabled() -> bool:
    return float(torch.tensor([1e-39], dtype=torch.float32).mul(2.0)[0]) == 0.0


def snapshot() -> dict:
    in_main_thread = threading.current_thread() is threading.main_thread()
    return {
        "signals": {sig: signal.getsignal(sig) for sig in _SIGNALS} if in_main_thread else {},
        "flush_denormal": flush_denormal_enabled(),
        "num_threads": torch.get_num_threads(),
        "default_dtype": torch.get_default_dtype(),
        "grad_enabled": torch.is_grad_enabled(),
        "environ": dict(os.environ),  # Fabric and seeding set PL_GLOBAL_SEED, DDP its MASTER_* variables
        "rng": (torch.get_rng_state(), np.random.get_state(), random.getstate()),
    }


def restore(saved: dict) -> None:
    for sig, handler in saved["signals"].items():
        if handler is not None:  # None: set outside Python; nothing we can put back
            signal.signal(sig, handler)
    torch.set_flush_denormal(saved["flush_denormal"])
    if torch.get_num_threads() != saved["num_threads"]:
        torch.set_num_threads(saved["num_threads"])
    torch.set_default_dtype(saved["default_dtype"])
    torch.set_grad_enabled(saved["grad_enabled"])
    for key in set(os.environ) - set(saved["environ"]):
        del os.environ[key]
    os.environ.update(saved["environ"])
    torch.set_rng_state(saved["rng"][0])
    np.random.set_state(saved["rng"][1])
    random.setstate(saved["rng"][2])


@contextmanager
def restored_afterwards():
    """Run the block, then put every setting in `snapshot` back, whether it returned or raised."""
    saved = snapshot()
    try:
        yield
    finally:
        restore(saved)
