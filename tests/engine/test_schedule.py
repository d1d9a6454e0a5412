"""engine/schedule.py's optimizer: AdamW takes torch's fused kernel on the CPU, the same update as the default loop."""

from __future__ import annotations

import copy

import torch

from pixelforge.engine.schedule import build_optimizer


def test_adamw_is_fused_on_the_cpu_and_steps_as_the_per_tensor_loop_does():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 2, 1))
    reference, start = copy.deepcopy(model), copy.deepcopy(model)
    decay = [p for p in model.parameters() if p.ndim > 1]
    groups = [{"params": iter(decay), "lr": 1e-2, "weight_decay": 0.05},  # a generator, as model.parameters() is
              {"params": [p for p in model.parameters() if p.ndim <= 1], "lr": 1e-2, "weight_decay": 0.0}]
    optimizer = build_optimizer("adamw", groups, 1e-2)
    assert all(group["fused"] for group in optimizer.param_groups)  # torch's CPU default is the per-tensor loop
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(model.parameters()))
    loop = torch.optim.AdamW([{"params": [p for p in reference.parameters() if p.ndim > 1], "weight_decay": 0.05},
                              {"params": [p for p in reference.parameters() if p.ndim <= 1], "weight_decay": 0.0}],
                             lr=1e-2, foreach=False)
    x = torch.randn(4, 3, 12, 12)
    for net, opt in ((model, optimizer), (reference, loop)):
        for _ in range(5):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for ours, theirs, before in zip(model.parameters(), reference.parameters(), start.parameters()):
        assert (ours - before).abs().max() > 1e-3  # each tensor moved
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)  # rounding apart, the same update


def test_a_lone_tensor_is_a_group_of_one():
    weight = torch.nn.Parameter(torch.ones(3, 2))
    optimizer = build_optimizer("adamw", [{"params": weight, "lr": 0.1}], 0.1)
    assert len(optimizer.param_groups[0]["params"]) == 1
