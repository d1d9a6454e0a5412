"""`precision: auto` picks bf16 only where it was measured to win, and bf16 training learns as well as fp32."""

import pytest
import torch

from pixelforge.engine import precision as prec
from pixelforge.tasks.config import build_config
from pixelforge.tasks.registry import get_task


def resolve(precision, task, strategy, accelerator):
    """What `pixelforge.train` asks: the engine's rule with the task's own word on bf16."""
    cfg = build_config(data="digits", task=task, strategy=strategy)
    return prec.resolve_precision(precision, fp32_reason=get_task(task).bf16_reason(cfg), accelerator=accelerator)


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_explicit_precision_is_kept():
    assert resolve("32", "classify", "full", "auto")[0] == "32"
    assert resolve("bf16-mixed", "detect", "full", "cpu")[0] == "bf16-mixed"


def test_lightning_s_short_forms_are_taken_as_its_mixed_precisions():
    """`--precision bf16` (Lightning's short form) was refused with a list of the long ones."""
    assert build_config(data="digits", precision="bf16").precision == "bf16-mixed"
    assert build_config(data="digits", precision=16).precision == "16-mixed"
    assert build_config(data="digits", precision="32-true").precision == "32"
    with pytest.raises(Exception, match="bf16-mixed"):
        build_config(data="digits", precision="bf16-true")  # pure bf16 weights: not offered, not mapped


def test_auto_is_bf16_only_for_end_to_end_classification_on_a_bf16_cpu(monkeypatch, cpu_only):
    monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda: True)
    assert resolve("auto", "classify", "full", "auto")[0] == "bf16-mixed"
    assert resolve("auto", "classify", "gradual", "cpu")[0] == "bf16-mixed"
    assert resolve("auto", "classify", "linear", "auto")[0] == "32"
    assert resolve("auto", "segment", "full", "auto")[0] == "bf16-mixed"
    for task in ("detect", "instance"):
        assert resolve("auto", task, "full", "auto")[0] == "32"
    monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda: False)  # emulated bf16 is slower than fp32
    assert resolve("auto", "classify", "full", "auto")[0] == "32"


def test_auto_on_cuda_is_amp(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve("auto", "classify", "full", "auto")[0] == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve("auto", "classify", "full", "cuda")[0] == "16-mixed"


@pytest.mark.slow
def test_bf16_with_fp32_depthwise_learns_as_well_as_fp32_on_a_fixed_split(tmp_path):
    """The faster default for full fine-tuning is not exact, so it must reach fp32's accuracy on the same split."""
    import pixelforge

    # 32 px without augmentation, 2 epochs at lr 3e-3 on the whole network (backbone_lr_mult 1.0, the quickstart's):
    # the same bf16 path (16 depthwise convolutions kept in fp32, the rest in bf16) in ~40 CPU s for both runs
    # instead of ~63 for 3 epochs at lr 1e-2 with the backbone at 0.1x, and at a higher accuracy (0.95-0.98 instead
    # of ~0.92), where a bf16 loss of learning shows against a smaller error. The digits are 8 px originals, so
    # 32 px loses nothing; calibration (a temperature fitted after training) is not what is compared, so it is off.
    options = dict(model="tf_efficientnet_lite0", strategy="full", img_size=32, augment="none", epochs=2, lr=3e-3,
                   backbone_lr_mult=1.0, calibrate=False, quiet=True, seed=0)
    fp32 = pixelforge.train("digits", out=str(tmp_path / "fp32"), precision="32", **options)
    bf16 = pixelforge.train("digits", out=str(tmp_path / "bf16"), precision="bf16-mixed", **options)
    assert fp32.best_val_accuracy > 0.9
    # Measured (fp32 vs bf16, of 270 validation digits): seed 0 0.948 vs 0.952, seed 1 0.967 vs 0.978 (the earlier
    # 3-epoch recipe: 0.915 vs 0.937). bf16 may do better; it must not do worse by more than 0.03 (8 images).
    assert bf16.best_val_accuracy >= fp32.best_val_accuracy - 0.03
