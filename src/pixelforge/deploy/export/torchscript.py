"""Running a `--format torchscript` package: the one model format that needs torch, so it lives on this side.

The torch-free runtime never imports torch; callers that may (the CLI commands, the server, the video loop, the
classification exporter's parity check) hand it this loader:

    runtime = load_runtime(package, loaders=TORCH_LOADERS)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class TorchScriptModel:
    """A TorchScript model with the ONNX path's call signature: NCHW float32 batch in, float32 logits out."""

    def __init__(self, path: Path, threads: int | None = None):
        import warnings

        import torch

        if threads:
            torch.set_num_threads(threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        self.torch = torch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.module(self.torch.from_numpy(batch)).float().numpy()


def load_torchscript(path: Path, threads: int | None = None) -> TorchScriptModel:
    return TorchScriptModel(path, threads)


load_torchscript.provider = "torch.jit"  # what /v1/model lists as the model's provider
TORCH_LOADERS = {"torchscript": load_torchscript}
