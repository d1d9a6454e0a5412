"""Post-hoc temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).

One scalar T, fitted after training on the validation split by minimising the negative log-likelihood of
softmax(logits / T). Predictions (the argmax) do not change; scores become probabilities that mean what they say:
label smoothing, for instance, trains a model to answer ~0.9 when it is right 98% of the time, and T < 1 sharpens
that back. T is written to RUN/calibration.json with ECE and NLL before and after; `load_run` applies it to every
score of the run (evaluate, predict, reports) and `export` carries it into the package, whose runtime applies it.

Written here rather than taken from a package: the fit is a one-dimensional minimisation, and the packages that
offer it (netcal, ...) would add a dependency for these few lines. It runs torch's L-BFGS on log T, as the paper's
reference code does, rather than scipy's bounded search: importing `scipy.optimize` cost ~0.3 s of every training
run, more than the fit (lever L19 in docs/performance.md); both find the same T (tests/tasks/test_calibration.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

from pixelforge.runs import folder as rd

BOUNDS = (0.05, 20.0)  # far beyond any useful temperature either way; the optimum is reported if it hits one
MIN_IMAGES = 20  # fewer validation images than this cannot pin T down


def nll(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> float:
    return float(torch.nn.functional.cross_entropy(logits.double() / temperature, targets))


def ece(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> float:
    """Expected calibration error, 15 bins, as the run's metrics compute it (metrics/classification.py)."""
    from pixelforge.metrics.classification import calibration_error

    return calibration_error((logits.double() / temperature).softmax(1).float(), targets, n_bins=15)


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The T minimising the NLL of softmax(logits / T), searched over log T and clipped to BOUNDS.

    The NLL is convex in 1/T, so it has one minimum along log T, which L-BFGS with a line search finds."""
    import math

    logits, targets = logits.detach().double().clone(), targets.detach().clone()  # never inference-mode tensors
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=100, tolerance_grad=1e-9, tolerance_change=1e-12,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    lowest, highest = math.log(BOUNDS[0]), math.log(BOUNDS[1])
    return float(math.exp(min(max(float(log_t.detach()), lowest), highest)))


def calibrate(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    """Fit T on (logits, targets) and describe the effect; T = 1 with a reason when it cannot be fitted."""
    n = int(len(targets))
    mistakes = int((logits.argmax(1) != targets).sum()) if n else 0
    base = {"temperature": 1.0, "images": n, "nll_before": nll(logits, targets) if n else None,
            "ece_before": ece(logits, targets) if n else None}
    if n < MIN_IMAGES:
        return {**base, "skipped": f"only {n} validation images (need {MIN_IMAGES})"}
    if mistakes == 0:
        # With every validation image right, the NLL keeps falling as T -> 0: no finite T is supported by the data.
        return {**base, "skipped": "no mistakes on the validation split: the temperature is not identifiable"}
    temperature = fit_temperature(logits, targets)
    return {**base, "temperature": round(temperature, 6), "nll_after": nll(logits, targets, temperature),
            "ece_after": ece(logits, targets, temperature)}


def calibrate_run(run: Path, cached=None) -> dict:
    """Fit the run's temperature on its validation split with the best checkpoint; write RUN/calibration.json.
    `cached`: the training's validation features (inference.CachedFeatures), reused when they are that split."""
    from pixelforge.tasks.classify.evaluate import select_samples
    from pixelforge.tasks.classify.inference import CALIBRATION_FILE, load_run, run_inference

    loaded = load_run(run, temperature=1.0)
    samples, split, _ = select_samples(loaded, None, "val")
    logits, kept, _ = run_inference(loaded, samples, cached=cached)
    index = {c: i for i, c in enumerate(loaded.classes)}
    result = {"split": split, **calibrate(logits, torch.tensor([index[s.label] for s in kept], dtype=torch.long))}
    rd.write_json(Path(run) / CALIBRATION_FILE, result)
    return result
