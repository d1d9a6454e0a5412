"""Exact speed-ups for training a model on the CPU: every value and gradient stays what it was, only faster.

Each works on the module instances (parameters, state-dict keys, evaluation and export are untouched). Measured on
Lite0 full fine-tuning, batch 32, 224 px, on a 2-core Xeon with AMX (benchmarks L6, L9-L11):

- `keep_depthwise_fp32`: under CPU bf16 autocast the depthwise convolutions run in fp32. oneDNN's bf16 depthwise
  backward is slow (stride-2 grad-input ~4x, 5x5 grad-weight ~5x slower than fp32 on the same tensors); the pointwise
  convs, batch norm and activations stay bf16. ~1.4x over fp32 per step.
- `fuse_same_padding`: timm's TF-"same" convs (`Conv2dSame`: Lite0's stem and stride-2 depthwise convs) call `F.pad`
  and then an unpadded conv. Under autocast that is two copies of some of the largest activations in the network
  (the cast, then the pad) and two more in backward (`F.pad`'s backward materializes the cropped gradient). In
  training the pad and the cast become a single copy (`_PadCast`) whose backward hands on a strided view instead.
  ~1.3x on top of the above with glibc's default malloc, ~1.06x with `cpu_memory.reuse_freed_memory` (which makes
  the extra copies cheaper); without autocast there is no cast to fuse and it measured no faster, so it is off.
- `relu6_out_of_place`: timm builds ReLU6 in place. In place on a bf16 tensor, PyTorch's clamp runs a slow path and
  autograd adds a copy (10.5 ms against 2.4 ms out of place for a 32x144x56x56 activation). Out of place it
  allocates one more activation, which `cpu_memory.reuse_freed_memory` makes cheap.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F


def depthwise_convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules()
            if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels]


def same_padded_convs(model: nn.Module) -> list[nn.Conv2d]:
    # A Conv2dSame exists only once timm is imported. Importing timm just to look cost ~2 s of CPU for a model of
    # pixelforge's own (simple_cnn) in every fresh process, each spawned DDP process included.
    if "timm" not in sys.modules:
        return []
    from timm.layers import Conv2dSame

    return [m for m in model.modules() if isinstance(m, Conv2dSame)]


def keep_depthwise_fp32(model: nn.Module) -> int:
    """Run the model's depthwise convolutions in fp32 under CPU bf16 autocast; returns how many.

    The input is cast up, the convolution (and its backward) runs in fp32, and the output is cast back to bf16 so
    the batch-norm and activation after it keep bf16's halved memory traffic. Outside autocast it changes nothing.
    """
    convs = depthwise_convs(model)
    for conv in convs:
        _wrap(conv, depthwise_fp32=True)
    return len(convs)


def fuse_same_padding(model: nn.Module) -> int:
    """Pad and cast the input of timm `Conv2dSame` convs in one copy when training under autocast; returns how many.

    Only in training mode, eagerly: evaluation, tracing, ONNX export and torch.compile see timm's own forward.
    """
    convs = same_padded_convs(model)
    for conv in convs:
        _wrap(conv, fused_padding=True)
    return len(convs)


def relu6_out_of_place(model: nn.Module) -> int:
    """Make the model's in-place ReLU6 activations out of place (same values and gradients); returns how many."""
    changed = [m for m in model.modules() if isinstance(m, nn.ReLU6) and m.inplace]
    for activation in changed:
        activation.inplace = False
    return len(changed)


def apply_exact_speedups(model: nn.Module, *, depthwise_fp32: bool) -> str:
    """Everything above that applies to `model` (depthwise fp32 only for CPU bf16 training); returns a log line."""
    done = []
    if depthwise_fp32:
        done.append(f"{keep_depthwise_fp32(model)} depthwise convolutions kept in fp32 (bf16 on CPU: faster on oneDNN)")
    if count := fuse_same_padding(model):
        done.append(f"{count} TF-'same' paddings fused with the cast")
    if count := relu6_out_of_place(model):
        done.append(f"{count} ReLU6 out of place")
    return "exact speed-ups: " + ("; ".join(done) if done else "none apply to this model")


@dataclass(frozen=True)
class _Options:
    depthwise_fp32: bool = False
    fused_padding: bool = False


def _wrap(conv: nn.Conv2d, **options) -> None:
    """Install (or update) the one wrapper a conv gets, so both changes compose and calling twice wraps once."""
    current = conv.forward
    if isinstance(current, functools.partial) and current.func is _forward:
        _, original, before = current.args
    else:
        original, before = current, _Options()
    conv.forward = functools.partial(_forward, conv, original, replace(before, **options))


def _forward(conv: nn.Conv2d, original, options: _Options, x: torch.Tensor) -> torch.Tensor:
    device = x.device.type
    autocast = torch.is_autocast_enabled(device)
    in_fp32 = options.depthwise_fp32 and autocast
    # Without autocast there is no cast to fuse, and with `cpu_memory.reuse_freed_memory` the crop alone measured
    # no faster (0.97x in fp32): timm's own forward runs.
    pads = _same_padding(conv, x) if options.fused_padding and autocast and _eager_training(conv) else None
    if not in_fp32 and pads is None:
        return original(x)
    if not in_fp32:  # a conv that autocast runs in bf16 (Lite0's stem): pad straight into bf16
        padded = _PadCast.apply(x, torch.get_autocast_dtype(device), *pads)
        return F.conv2d(padded, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)
    with torch.autocast(device, enabled=False):
        if pads is None:
            out = original(x.float())
        else:
            padded = _PadCast.apply(x, torch.float32, *pads)
            out = F.conv2d(padded, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)
    return out.to(torch.get_autocast_dtype(device))


def _eager_training(conv: nn.Module) -> bool:
    exporting = torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()
    return conv.training and not exporting


def _same_padding(conv: nn.Conv2d, x: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(left, right, top, bottom): what timm's `pad_same` would pad this NCHW input with."""
    from timm.layers.padding import get_same_padding

    if x.ndim != 4:
        return None
    pad_h = get_same_padding(x.shape[-2], conv.kernel_size[0], conv.stride[0], conv.dilation[0])
    pad_w = get_same_padding(x.shape[-1], conv.kernel_size[1], conv.stride[1], conv.dilation[1])
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


class _PadCast(torch.autograd.Function):
    """Zero-pad an NCHW tensor and cast it in one copy, keeping its memory format; backward crops as a view."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dtype: torch.dtype, left: int, right: int, top: int, bottom: int):
        n, c, h, w = x.shape
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        out = torch.empty((n, c, h + top + bottom, w + left + right), dtype=dtype, device=x.device,
                          memory_format=layout)
        out[:, :, :top].zero_()  # only the border is zeroed: the interior is written once, by the copy
        out[:, :, top + h:].zero_()
        out[:, :, top:top + h, :left].zero_()
        out[:, :, top:top + h, left + w:].zero_()
        out[:, :, top:top + h, left:left + w].copy_(x)
        ctx.box, ctx.dtype = (left, top, h, w), x.dtype
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        left, top, h, w = ctx.box
        crop = grad[:, :, top:top + h, left:left + w]  # a view: the next backward reads it in place
        return (crop.to(ctx.dtype) if grad.dtype != ctx.dtype else crop), None, None, None, None, None
