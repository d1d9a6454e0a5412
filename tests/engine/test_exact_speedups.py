"""The training conv wrappers are exact: fp32 depthwise convs under bf16, and fused "same" padding, change no value."""

import copy
import functools

import pytest
import timm
import torch
from timm.layers import Conv2dSame
from torch import nn
from torch.nn import functional as F

from pixelforge.engine import exact_speedups as speedups


def _block():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(8, 16, 1), nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16))


def test_depthwise_convs_run_in_fp32_under_bf16_autocast():
    plain, kept = _block(), _block()
    assert speedups.keep_depthwise_fp32(kept) == 1 and speedups.keep_depthwise_fp32(kept) == 1  # wraps once
    x = torch.randn(2, 8, 12, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pointwise = kept[0](x)
        ours, theirs = kept[1](pointwise), plain[1](pointwise)
    expected = nn.functional.conv2d(pointwise.float(), kept[1].weight, kept[1].bias, padding=1, groups=16)
    expected = expected.to(torch.bfloat16)
    assert ours.dtype == torch.bfloat16 and pointwise.dtype == torch.bfloat16  # pointwise conv stays bf16
    assert torch.equal(ours, expected)
    assert not torch.equal(theirs, expected)  # what autocast alone would have done: a bf16 convolution
    ours.float().sum().backward()
    assert kept[1].weight.grad.dtype == torch.float32


@pytest.mark.parametrize("kernel, size, channels_last", [(3, 12, True), (5, 12, True), (5, 13, False), (3, 7, True)])
def test_same_padded_depthwise_gives_exactly_the_unfused_result(kernel, size, channels_last):
    """timm's TF-"same" convs pad then convolve; the fused pad+cast must not change a value or a gradient."""
    from timm.layers import Conv2dSame

    torch.manual_seed(0)
    conv = Conv2dSame(16, 16, kernel, stride=2, groups=16, bias=False)
    reference = copy.deepcopy(conv)
    assert speedups.keep_depthwise_fp32(conv) == 1
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 16, size, size).to(torch.bfloat16).contiguous(memory_format=layout)
    ours_in, theirs_in = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = conv(ours_in)
        with torch.autocast("cpu", enabled=False):
            theirs = reference(theirs_in.float()).to(torch.bfloat16)  # the plain way: cast, F.pad, convolve
    assert ours.dtype == torch.bfloat16 and ours.shape == theirs.shape and torch.equal(ours, theirs)
    grad = torch.randn_like(ours)
    ours.backward(grad)
    theirs.backward(grad)
    assert ours_in.grad.dtype == torch.bfloat16 and torch.equal(ours_in.grad, theirs_in.grad)
    assert torch.equal(conv.weight.grad, reference.weight.grad)


def test_the_wrapper_changes_nothing_outside_autocast():
    plain, kept = _block(), _block()
    speedups.keep_depthwise_fp32(kept)
    x = torch.randn(2, 8, 12, 12)
    assert torch.equal(plain(x), kept(x))
    assert list(plain.state_dict()) == list(kept.state_dict())


def test_fused_padding_of_a_bf16_conv_gives_exactly_timms_values_and_gradients():
    """Lite0's stem: a dense same-padded conv that autocast runs in bf16 (padded straight into bf16)."""
    torch.manual_seed(0)
    conv = Conv2dSame(3, 16, 3, stride=2)
    reference = copy.deepcopy(conv)
    assert speedups.fuse_same_padding(nn.Sequential(conv)) == 1
    x = torch.randn(2, 3, 10, 10).contiguous(memory_format=torch.channels_last)
    ours_in, theirs_in = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, theirs = conv(ours_in), reference(theirs_in)
    assert ours.dtype == torch.bfloat16 and torch.equal(ours, theirs)
    grad = torch.randn_like(ours)
    ours.backward(grad)
    theirs.backward(grad)
    assert torch.equal(ours_in.grad, theirs_in.grad) and torch.equal(conv.weight.grad, reference.weight.grad)
    assert torch.equal(conv.bias.grad, reference.bias.grad)


def test_fused_padding_is_used_only_while_training_eagerly(monkeypatch):
    conv = Conv2dSame(4, 4, 3, stride=2, groups=4)
    speedups.fuse_same_padding(conv)
    calls = []
    real = speedups._PadCast.apply
    monkeypatch.setattr(speedups._PadCast, "apply", lambda *a: calls.append(1) or real(*a))
    x = torch.randn(1, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conv.train()(x)
        assert calls == [1]
        conv.eval()(x)
    conv.train()(x)  # fp32: no cast to fuse
    torch.jit.trace(conv.eval(), x)  # what export sees: timm's own forward (F.pad, then the conv)
    assert calls == [1]


def _plain_fp32_conv(forward, x):
    with torch.autocast("cpu", enabled=False):
        return forward(x.float()).to(torch.bfloat16)


def test_a_whole_lite0_trains_identically_with_every_speedup_under_bf16():
    """The real network: every value and gradient of a bf16 step is bit-equal to timm's own modules (fp32 depthwise)."""
    torch.manual_seed(0)
    ours = timm.create_model("tf_efficientnet_lite0", num_classes=3).train()
    theirs = copy.deepcopy(ours)
    line = speedups.apply_exact_speedups(ours, depthwise_fp32=True)
    assert line == ("exact speed-ups: 16 depthwise convolutions kept in fp32 (bf16 on CPU: faster on oneDNN); "
                    "5 TF-'same' paddings fused with the cast; 33 ReLU6 out of place")
    speedups.keep_depthwise_fp32(ours)  # calling again changes nothing
    for conv in speedups.depthwise_convs(theirs):  # the plain way: cast up, timm's forward (F.pad + conv), cast back
        conv.forward = functools.partial(_plain_fp32_conv, conv.forward)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    y = torch.tensor([0, 2])
    losses = []
    for model in (ours, theirs):
        model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        losses.append(loss)
    assert torch.equal(losses[0], losses[1])
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        assert torch.equal(a.grad, b.grad), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_relu6_out_of_place_keeps_values_and_gradients_at_the_clip_points(dtype):
    inplace = nn.Sequential(nn.Identity(), nn.ReLU6(inplace=True))
    outplace = nn.Sequential(nn.Identity(), nn.ReLU6(inplace=True))
    assert speedups.relu6_out_of_place(outplace) == 1 and not outplace[1].inplace
    x = torch.tensor([-1.0, 0.0, 0.5, 6.0, 7.0], dtype=dtype)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = inplace(a * 1), outplace(b * 1)  # `* 1`: in place needs a non-leaf
    assert torch.equal(ya, yb)
    ya.sum().backward()
    yb.sum().backward()
    assert torch.equal(a.grad, b.grad)
