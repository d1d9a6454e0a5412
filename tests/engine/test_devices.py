"""engine/devices.py: evaluation borrows the GPU when there is one (tests/test_cuda.py checks the moves on a GPU)."""

import pytest
import torch

from pixelforge.engine.devices import inference_device, model_device, on_inference_device


def test_the_inference_device_is_the_gpu_only_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert inference_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert inference_device() == torch.device("cuda")


def test_a_move_inside_inference_mode_is_refused_before_it_makes_inference_weights():
    model = torch.nn.Linear(2, 2)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="outside torch.inference_mode"):
        with on_inference_device(model, "meta"):
            pass
    assert model_device(model).type == "cpu" and not model.weight.is_inference()
    with torch.inference_mode(), on_inference_device(model, "cpu") as device:  # staying put is harmless
        assert device == torch.device("cpu")


def test_the_model_is_handed_back_when_the_block_raises():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError), on_inference_device(model, "cpu"):
        raise ValueError("a corrupt image")
    assert model_device(model).type == "cpu" and model_device(torch.nn.ReLU()).type == "cpu"
