"""The cached feature graph compiled by OpenVINO for the CPU: the same ONNX file ONNX Runtime runs, faster.

OpenVINO's CPU plugin fuses Lite0's depthwise convolutions with their batch norm and ReLU6 and picks oneDNN kernels
for the machine; on the 2-core AMD EPYC it ran Lite0 at 224 px over 245 images in 1.67-1.95 s against ONNX
Runtime's 2.44-2.91 s, with features within 1e-5 of ONNX Runtime's (issue 20, lever L25; docs/performance.md).

Precision is fp32: OpenVINO's own default on a CPU with native bf16 (AVX512-BF16, AMX) is bf16, which
is not the eager backbone's arithmetic. `FeatureExtractor` (features.py) checks this graph against eager PyTorch on
the first batch like any other engine, and falls back to ONNX Runtime, then eager, when it is missing or differs.
"""

from __future__ import annotations

import ctypes
import sys
from contextlib import contextmanager

import torch

from pixelforge.tasks.classify.graph_backbone import GraphBackbone


def available() -> bool:
    """Whether the `openvino` package can be imported here (it has no wheel for every platform)."""
    from importlib.util import find_spec

    return find_spec("openvino") is not None


class OpenVinoBackbone(GraphBackbone):
    """`graph` (ONNX bytes, batch dimension dynamic) compiled for the CPU in fp32 with `threads` threads; compiled
    graphs are kept in `cache_dir` when given."""

    def __init__(self, graph: bytes, threads: int | None = None, cache_dir=None):
        import openvino as ov

        core = ov.Core()
        if cache_dir is not None:  # compiled blobs: compiling Lite0 took 0.13 s, loading its blob 0.04 s
            core.set_property({"CACHE_DIR": str(cache_dir)})
        config = {"INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
                  "INFERENCE_PRECISION_HINT": "f32",  # not OpenVINO's bf16 default on CPUs that have it
                  # One request at a time, each as fast as it can: the feature loop waits for every batch.
                  "PERFORMANCE_HINT": "LATENCY"}
        with _signal_stack_kept():
            self.compiled = core.compile_model(core.read_model(graph), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.outputs = {output.get_any_name(): output for output in self.compiled.outputs}
        self.has_map = "map" in self.outputs

    def _run(self, names: list[str], array):
        results = self.request.infer({0: array})
        # The request reuses its output buffers on the next call: copy what is kept.
        return [results[self.outputs[name]].copy() for name in names]


class _SignalStack(ctypes.Structure):  # Linux's stack_t
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@contextmanager
def _signal_stack_kept():
    """Run the block, then put back the thread's alternate signal stack as it was.

    Why: compiling a model, OpenVINO's CPU plugin (2025-2026 releases) sets an alternate signal stack of its own on
    the calling thread and saves the one it replaced; releasing the model sets the saved one back. With two models
    alive at once, the second saves the first's stack, so releasing them in the order made leaves the thread on
    memory already freed, and the next signal with a Python handler (Ctrl-C, SIGTERM, a DataLoader's SIGCHLD) is
    delivered onto it: the process segfaults. Python (faulthandler) installs its own signal stack, so keeping the
    caller's stack loses nothing, and every release then sets back that same valid stack.
    """
    if sys.platform != "linux":  # stack_t's layout above is Linux's; the plugin's behaviour was seen there
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    saved = _SignalStack()
    if libc.sigaltstack(None, ctypes.byref(saved)) != 0:
        yield
        return
    try:
        yield
    finally:
        saved.ss_flags &= ~1  # SS_ONSTACK is a state the kernel reports, not one sigaltstack accepts
        libc.sigaltstack(ctypes.byref(saved), None)
