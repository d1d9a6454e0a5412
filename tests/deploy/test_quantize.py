"""int8 quantization: each calibration method is really applied, quietly, and a refusal states one allowed drop."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")


def _activation_scales(path: Path) -> dict:
    from onnx import numpy_helper

    return {i.name: float(numpy_helper.to_array(i).ravel()[0]) for i in onnx.load(str(path)).graph.initializer
            if i.name.endswith("_scale") and "weight" not in i.name and "bias" not in i.name}


def test_entropy_and_minmax_calibration_give_different_ranges_quietly(tmp_path, capfd):
    from pixelforge.deploy.export.onnx import export_dynamic_batch
    from pixelforge.deploy.export.quantize import quantize_int8

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 12 * 12, 3)).eval()
    fp32 = tmp_path / export_dynamic_batch(model, tmp_path / "model.onnx", torch.randn(2, 3, 16, 16), 18)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((8, 3, 16, 16)).astype(np.float32) ** 3 for _ in range(4)]  # long tails
    capfd.readouterr()
    scales = {method: _activation_scales(quantize_int8(fp32, tmp_path / f"{method}.onnx", iter(batches), method))
              for method in ("minmax", "entropy")}
    printed = capfd.readouterr()
    assert scales["minmax"].keys() == scales["entropy"].keys() and scales["minmax"]
    # Entropy clips the long tails that minmax keeps: smaller scales, not the same ones.
    assert any(scales["entropy"][k] < 0.9 * scales["minmax"][k] for k in scales["minmax"]), scales
    assert "Collecting tensor data" not in printed.out + printed.err
    assert "histogram" not in printed.out + printed.err


def test_int8_refusal_states_one_allowed_drop_and_suggests_other_calibrations():
    from pixelforge.deploy.export.parity import check_accuracy_drop
    from pixelforge.errors import PixelforgeError
    from pixelforge.tasks.classify.export import _require, int8_fix

    measured = {"max_abs_logit_diff": 0.5, "top1_agreement": 0.9, "images": 40, "accuracy": 0.5,
                "reference_accuracy": 0.6}
    checked = check_accuracy_drop(measured, 1.0)  # one image of 40 is 2.5 points: the drop allowed
    with pytest.raises(PixelforgeError) as refused:
        _require("int8", checked, int8_fix(checked, "entropy"))
    message = str(refused.value)
    assert re.findall(r"allowed drop ([\d.]+) points", message) == ["2.5"] and "above 2.5" in message
    assert "now 1.0" not in message and "try --calibration percentile or minmax," in message
