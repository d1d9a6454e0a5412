"""Temperature scaling: fitted on validation, lowers the calibration error it is meant to lower, and is applied to
every score a run or its package gives (predictions unchanged)."""

from __future__ import annotations

import shutil

import pytest
import torch

from pixelforge.tasks.classify.calibration import calibrate, ece, fit_temperature, nll


def _logits(sharpness: float, n: int = 2000, classes: int = 4, seed: int = 0):
    """Logits scaled by `sharpness` from ones that are calibrated by construction: each target is drawn from the
    softmax of its logits."""
    g = torch.Generator().manual_seed(seed)
    true_logits = 2.5 * torch.randn(n, classes, generator=g)
    targets = torch.multinomial(true_logits.softmax(1), 1, generator=g).squeeze(1)
    return true_logits * sharpness, targets


@pytest.mark.parametrize("sharpness", [3.0, 0.4])  # overconfident, underconfident (as label smoothing makes it)
def test_fitted_temperature_undoes_the_miscalibration(sharpness):
    logits, targets = _logits(sharpness)
    temperature = fit_temperature(logits, targets)
    assert temperature == pytest.approx(sharpness, rel=0.1)  # dividing by T recovers the calibrated logits
    assert nll(logits, targets, temperature) < nll(logits, targets)
    fitted = calibrate(logits, targets)
    assert fitted["ece_after"] < fitted["ece_before"] / 2
    assert fitted["ece_before"] == pytest.approx(ece(logits, targets))


@pytest.mark.parametrize("sharpness,n,classes", [(0.1, 49, 2), (0.4, 200, 4), (3.0, 2000, 10), (8.0, 49, 2)])
def test_lbfgs_finds_the_temperature_scipys_bounded_search_found(sharpness, n, classes):
    """The fit moved from scipy's bounded search to torch's L-BFGS (no scipy.optimize import): same T, no worse NLL."""
    import math

    optimize = pytest.importorskip("scipy.optimize")
    logits, targets = _logits(sharpness, n, classes, seed=n)
    scipy_t = math.exp(optimize.minimize_scalar(lambda log_t: nll(logits, targets, math.exp(log_t)),
                                                bounds=(math.log(0.05), math.log(20.0)), method="bounded",
                                                options={"xatol": 1e-4}).x)
    temperature = fit_temperature(logits, targets)
    assert temperature == pytest.approx(scipy_t, rel=1e-3)
    assert nll(logits, targets, temperature) <= nll(logits, targets, scipy_t) + 1e-9


def test_calibration_is_skipped_when_it_cannot_be_fitted():
    logits, targets = _logits(1.0, n=10)
    assert calibrate(logits, targets)["temperature"] == 1.0 and "only 10" in calibrate(logits, targets)["skipped"]
    perfect = torch.nn.functional.one_hot(torch.arange(40) % 4, 4).float() * 5
    skipped = calibrate(perfect, torch.arange(40) % 4)
    assert skipped["temperature"] == 1.0 and "no mistakes" in skipped["skipped"]


def test_training_writes_calibration_json(tiny_run):
    from pixelforge.runs import folder as rd

    fitted = rd.read_json(tiny_run / "calibration.json")
    assert fitted["split"] == "val" and fitted["images"] > 0 and fitted["temperature"] > 0
    assert ("skipped" in fitted) or fitted["ece_after"] <= fitted["ece_before"] + 1e-9


@pytest.mark.slow  # exports a package
def test_temperature_reaches_run_scores_evaluate_and_the_package(tiny_run, tmp_path):
    import numpy as np

    import pixelforge
    from pixelforge.deploy.runtime import Runtime
    from pixelforge.runs import folder as rd
    from pixelforge.tasks.classify.inference import load_run, run_inference
    from pixelforge.tasks.classify.evaluate import select_samples

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    rd.write_json(run / "calibration.json", {"temperature": 2.5, "split": "val"})
    loaded = load_run(run)
    samples = select_samples(loaded, None, "val")[0][:6]
    raw, kept, _ = run_inference(loaded, samples, calibrated=False)
    scaled, _, _ = run_inference(loaded, samples)
    assert torch.allclose(scaled, raw / 2.5) and torch.equal(scaled.argmax(1), raw.argmax(1))

    predictions = pixelforge.predict(run, [str(s.path) for s in kept])
    expected = (raw / 2.5).softmax(1).max(1).values
    assert [p["score"] for p in predictions] == pytest.approx(expected.tolist(), abs=1e-5)

    metrics = pixelforge.evaluate(run).metrics
    assert metrics["temperature"] == 2.5 and metrics["ece_uncalibrated"] != metrics["ece"]

    pixelforge.export(run, out=tmp_path / "pkg")
    runtime = Runtime(tmp_path / "pkg")
    assert runtime.temperature == 2.5
    packaged = runtime.predict_files([str(s.path) for s in kept])
    assert np.allclose([p["score"] for p in packaged], [p["score"] for p in predictions], atol=1e-3)
