"""Per-group metrics of a classification run's evaluation (metrics/fairness.py), with the run's own training split
as the representation reference and an optional before/after comparison with a baseline run."""

from __future__ import annotations

import torch

from pixelforge.errors import PixelforgeError
from pixelforge.metrics.fairness import before_after, group_metrics


def group_report(loaded, samples: list, logits: torch.Tensor, targets: torch.Tensor, spec: str, origin: str,
                 baseline=None, threshold: float = 0.1) -> dict:
    """`group_metrics` for evaluated `samples` of a loaded run, with the run's own training split as the
    representation reference; `baseline` (another run folder) adds a before/after comparison on the same images."""
    from pixelforge.data.groups import has_groups, resolve_groups
    from pixelforge.tasks.classify.task import prepare_data

    if not spec:
        raise PixelforgeError("--compare needs --groups COLUMN (or a folder,group mapping .csv) to compare groups by")
    groups = resolve_groups(samples, spec, origin)
    train_groups = None
    try:
        train = prepare_data(loaded.config)[0].split("train")
        if has_groups(train, spec):
            train_groups = resolve_groups(train, spec, loaded.config.data)
    except PixelforgeError:  # the training data moved or is gone: representation unknown, say so
        pass
    result = group_metrics(logits.softmax(1), targets, groups, loaded.classes, train_groups, spec, threshold)
    if baseline is not None:
        from pixelforge.tasks.classify.inference import load_run, run_inference

        before_run = load_run(baseline)
        if before_run.classes != loaded.classes:
            raise PixelforgeError(f"{baseline}: its classes differ from {loaded.run_dir}'s; compare runs of one dataset")
        before_logits, kept, _ = run_inference(before_run, samples)
        idx = {c: i for i, c in enumerate(before_run.classes)}
        before_targets = torch.tensor([idx[s.label] for s in kept], dtype=torch.long)
        before = group_metrics(before_logits.softmax(1), before_targets, resolve_groups(kept, spec, origin),
                               before_run.classes, None, spec, threshold)
        result["summary"]["before_after"] = {"baseline": str(baseline), **before_after(before, result)}
    return result
