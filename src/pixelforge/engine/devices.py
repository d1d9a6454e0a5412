"""Where a trained model scores images after training: the GPU when there is one, else the CPU.

Every task's evaluation (the report written right after training, `pixelforge evaluate`, calibration) runs the
best checkpoint over a whole split. Loaded checkpoints live on the CPU, where export, explanation and the parity
checks want them; on a GPU machine scoring there would take longer than training (measured on an H200: ResNet-50
over 410 images took longer than its three training epochs). So evaluation borrows the GPU for the loop and hands
the model back where it found it.

Used by classification, detection, instance and semantic segmentation, denoising, the GAN's FID and CLIP's
retrieval. Left on the CPU on purpose: compression (its entropy coder must compute bit-identical scales on the
encoding and the decoding side, and it reports CPU seconds), captioning (beam search steps through NumPy one word at
a time) and the style report (four photos).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


def inference_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@contextmanager
def on_inference_device(model: torch.nn.Module, device=None) -> Iterator[torch.device]:
    """Move `model` to `device` (default `inference_device()`) for the block, and back to where it was afterwards;
    yields the device, so the block can move its inputs there.

    Moved outside inference mode: weights moved inside it would become inference tensors, which Grad-CAM's autograd
    and later training refuse. Callers keep finding the model where they left it, even when the block raises."""
    device = torch.device(device) if device is not None else inference_device()
    home = model_device(model)
    moving = device.type != home.type or None not in (device.index, home.index) and device.index != home.index
    if moving and torch.is_inference_mode_enabled():  # a programming error, not a user's
        raise RuntimeError("on_inference_device: enter it outside torch.inference_mode()")
    model.to(device)
    try:
        yield device
    finally:
        model.to(home)
