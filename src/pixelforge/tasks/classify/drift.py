"""`pixelforge data drift RUN NEW_DIR`: have the new images drifted from the run's training images?

Both sets go through the run's backbone (its pooled features, the run's own eval preprocessing) and are
compared with metrics/drift.py's two-sample tests, on at most `max_images` images a side (a seeded draw):

- retraining is advised when the MMD permutation test rejects "same distribution" at p < 0.01 AND the domain
  classifier's AUC is at least 0.7: the p-value alone flags shifts too small to matter once sets are large, the
  AUC alone has no error rate;
- the per-class share shift is the total variation distance between the model's predicted class shares on the
  training images and on the new ones (the new images need no labels).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from pixelforge.errors import PixelforgeError

P_THRESHOLD = 0.01
AUC_THRESHOLD = 0.7


def _new_images(folder: Path) -> list:
    from pixelforge.data.images import list_images
    from pixelforge.data.sources import Sample

    if not folder.is_dir():
        raise PixelforgeError(f"{folder}: not a folder of images")
    paths = list_images(folder)
    if not paths:
        raise PixelforgeError(f"{folder}: no images found (png, jpg, ...) in it or its subfolders")
    return [Sample(p, p.parent.name) for p in paths]


@torch.inference_mode()
def _embed(loaded, samples: list) -> tuple[np.ndarray, np.ndarray]:
    """(pooled backbone features, predicted class indices) of readable samples."""
    from torch.utils.data import DataLoader

    from pixelforge.data.dataset import ImageDataset

    dataset = ImageDataset(samples, {s.label: 0 for s in samples}, loaded.short_side, loaded.transform)
    dataset.preload()
    features, predicted = [], []
    for x, _ in DataLoader(dataset, batch_size=64):
        f = loaded.model.backbone(x.contiguous(memory_format=torch.channels_last)).float()
        features.append(f)
        predicted.append(loaded.model.head(f).argmax(1))
    if not features:
        raise PixelforgeError("no readable images to compare")
    return torch.cat(features).numpy(), torch.cat(predicted).numpy()


def _shares(predicted: np.ndarray, classes: list[str]) -> dict[str, float]:
    counts = np.bincount(predicted, minlength=len(classes))
    return {c: round(float(n) / max(1, len(predicted)), 4) for c, n in zip(classes, counts)}


def drift_report(run: str | Path, new_dir: str | Path, max_images: int = 500, permutations: int = 500,
                 seed: int = 0) -> dict:
    """Compare `new_dir`'s images with `run`'s training images; a dict for --json (see the module docstring):
    train_images, new_images, mmd2, p_value, domain_auc, drift, retrain_advised, thresholds, ...
    (`pixelforge.drift`, `pixelforge data drift`).

    Example:
        >>> drift_report("runs/cl-task1", "data/split-digits/task2/test")["retrain_advised"]  # doctest: +SKIP
        True
    """
    from pixelforge.metrics.drift import domain_auc, mmd_test, share_shift
    from pixelforge.tasks.classify.continual.carry import training_samples
    from pixelforge.tasks.classify.inference import load_run

    from pixelforge.runs import folder as rd
    from pixelforge.tasks.classify.config import ClassifyConfig
    from pixelforge.tasks.config import load_config

    cfg = load_config(rd.require_run(run) / "config.yaml")
    if not isinstance(cfg, ClassifyConfig):  # its backbone's features would need that task's own model
        raise PixelforgeError(f"{run}: a {cfg.task!r} run; data drift compares features of a classify run")
    loaded = load_run(run)
    draw = random.Random(seed)
    train = training_samples(loaded.run_dir)
    new = _new_images(Path(new_dir))
    train = draw.sample(train, min(max_images, len(train)))
    new = draw.sample(new, min(max_images, len(new)))
    a, pred_a = _embed(loaded, train)
    b, pred_b = _embed(loaded, new)
    if len(a) < 5 or len(b) < 5:
        raise PixelforgeError(f"{new_dir}: {len(b)} readable new image(s); the test needs at least 5 a side")
    mmd = mmd_test(a, b, permutations, seed)
    auc = domain_auc(a, b, seed)
    before, after = _shares(pred_a, loaded.classes), _shares(pred_b, loaded.classes)
    advised = mmd["p_value"] < P_THRESHOLD and auc >= AUC_THRESHOLD
    return {"run": str(loaded.run_dir), "new": str(new_dir), "train_images": len(a), "new_images": len(b),
            "mmd2": mmd["mmd2"], "p_value": mmd["p_value"], "permutations": permutations, "domain_auc": auc,
            "drift": bool(mmd["p_value"] < P_THRESHOLD), "retrain_advised": bool(advised),
            "thresholds": {"p_value": P_THRESHOLD, "domain_auc": AUC_THRESHOLD},
            "predicted_shares": {"train": before, "new": after}, "share_shift": share_shift(before, after)}


def format_drift(report: dict) -> str:
    verdict = "retraining advised" if report["retrain_advised"] else "no retraining needed"
    return (f"{report['new']}: {report['new_images']} new vs {report['train_images']} training images; "
            f"MMD^2 {report['mmd2']:.4f} (p = {report['p_value']:.4f}), domain AUC {report['domain_auc']:.3f}, "
            f"predicted class-share shift {report['share_shift']:.3f} -> {verdict} "
            f"(advised when p < {P_THRESHOLD} and AUC >= {AUC_THRESHOLD})")
