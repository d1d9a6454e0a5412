"""`--compile`: the compiled training step computes what the eager one does, and only where it is meant to run."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from pixelforge.engine.compiled import CompiledTrainingForward, compile_decision


def test_compile_decision():
    assert compile_decision(False, strategy="full", world_size=1)[0] is False
    assert compile_decision(True, strategy="gradual", world_size=1)[0] is False  # unfreezing would recompile
    assert compile_decision(True, strategy="full", world_size=2)[0] is False
    wanted, reason = compile_decision(True, strategy="full", world_size=1)
    assert wanted and reason == "on (--compile)"


def test_no_compiler_means_eager_with_a_reason(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    wanted, reason = compile_decision(True, strategy="full", world_size=1)
    assert not wanted and "C++ compiler" in reason


@pytest.mark.slow
def test_compiled_step_matches_eager_and_skips_partial_batches_and_eval():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 3)).train()
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 1])
    forward = CompiledTrainingForward(batch_size=4)

    def grads(fn):
        model.zero_grad()
        F.cross_entropy(fn(x), y).backward()
        return [p.grad.clone() for p in model.parameters()]

    compiled, eager = grads(lambda inputs: forward(model, inputs)), grads(model)
    assert forward._compiled is not None and not forward.failed
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    calls = []
    forward._compiled = lambda inputs: calls.append(inputs) or model(inputs)  # count what reaches the compiled copy
    forward(model, x[:3])  # the last, smaller batch of an epoch
    model.eval()
    forward(model, x)
    model.train()
    forward(model, x)
    assert len(calls) == 1
