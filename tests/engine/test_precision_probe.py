"""`precision: auto` on a CPU with native BF16 measures the model both ways once, keeps the answer, and takes bf16
only when it is clearly faster."""

import json

import pytest

from pixelforge.engine import precision as prec
from pixelforge.engine import precision_probe as probe
from pixelforge.models.classifier import build_classifier


def tiny_model():
    return build_classifier("simple_cnn", 3, "none")


@pytest.mark.parametrize("fp32, bf16, choice", [(10.0, 9.0, "32"), (10.0, 10.3, "32"), (10.0, 12.0, "bf16-mixed")])
def test_bf16_is_chosen_only_when_clearly_faster(monkeypatch, tmp_path, fp32, bf16, choice):
    monkeypatch.setattr(probe, "measure", lambda *a: {"fp32_images_per_s": fp32, "bf16_images_per_s": bf16})
    picked, reason = probe.probe_precision(tiny_model, "simple_cnn", 32, 4, 3, tmp_path)
    assert picked == choice
    assert f"{bf16:.1f} img/s in bf16 vs {fp32:.1f} in fp32" in reason and "measured now" in reason


def test_the_answer_is_kept_per_machine_and_model(monkeypatch, tmp_path):
    calls = []

    def fake_measure(*args):
        calls.append(args)
        return {"fp32_images_per_s": 10.0, "bf16_images_per_s": 20.0}

    monkeypatch.setattr(probe, "measure", fake_measure)
    first = probe.probe_precision(tiny_model, "simple_cnn", 32, 4, 3, tmp_path)
    second = probe.probe_precision(tiny_model, "simple_cnn", 32, 4, 3, tmp_path)
    assert len(calls) == 1 and first[0] == second[0] == "bf16-mixed"
    assert str(tmp_path / probe.PROBE_FILE) in second[1]
    probe.probe_precision(tiny_model, "simple_cnn", 64, 4, 3, tmp_path)  # another size is another measurement
    assert len(calls) == 2
    saved = json.loads((tmp_path / probe.PROBE_FILE).read_text())
    assert len(saved) == 2 and all(probe.cpu_name() in key for key in saved)
    (tmp_path / probe.PROBE_FILE).write_text("{broken")  # a damaged file is measured again, not a crash
    assert probe.probe_precision(tiny_model, "simple_cnn", 32, 4, 3, tmp_path)[0] == "bf16-mixed"
    assert len(calls) == 3


def test_measure_times_real_training_steps_both_ways():
    result = probe.measure(tiny_model, 32, 4, 3)
    assert result["fp32_images_per_s"] > 0 and result["bf16_images_per_s"] > 0


def test_resolve_uses_the_probe_only_where_bf16_is_native(monkeypatch):
    monkeypatch.setattr(prec.torch.cuda, "is_available", lambda: False)
    asked = []

    def fake_probe():
        asked.append(True)
        return "32", "auto: measured"

    monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda: True)
    assert prec.resolve_precision("auto", fp32_reason=None, accelerator="auto", probe=fake_probe) == ("32", "auto: measured")
    assert prec.resolve_precision("bf16-mixed", fp32_reason=None, accelerator="auto", probe=fake_probe)[0] == "bf16-mixed"
    assert prec.resolve_precision("auto", fp32_reason="linear", accelerator="auto", probe=fake_probe)[0] == "32"
    monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda: False)
    assert prec.resolve_precision("auto", fp32_reason=None, accelerator="auto", probe=fake_probe)[0] == "32"
    assert len(asked) == 1
