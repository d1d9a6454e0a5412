"""`pixelforge.evaluate`: score a run on a dataset and write the figures that explain the score.

Which images: a dataset with splits is scored on its `test` split (else `val`), unless `split` says otherwise;
a plain folder of class subfolders is scored in full. With no `data`, the run's own validation split is used.

With `data`, the run's own training images (its config's data, seed and val_fraction reproduce its split) are left
out of the score (tasks/common/held_out.py: matched by resolved path and by content hash), and
`excluded_training_images` says how many; `include_train=True` scores them too. Otherwise an accuracy on a folder
that holds the training images silently measures memorisation.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pixelforge.data.groups import has_groups
from pixelforge.data.sources import DataSource, Sample, resolve_data
from pixelforge.runs import folder as rd
from pixelforge.errors import PixelforgeError
from pixelforge.runs.result import EvalResult
from pixelforge.runs.files import held_out_split
from pixelforge.metrics.fairness import bootstrap_intervals
from pixelforge.tasks.classify.groups import group_report
from pixelforge.tasks.common.held_out import leave_out_training_images
from pixelforge.tasks.classify.inference import LoadedRun, load_run, run_inference
from pixelforge.metrics.classification import classification_metrics, worst_mistakes
from pixelforge.viz.grid import plot_gallery
from pixelforge.viz.plots import plot_confusion
from pixelforge.explain.gallery import explanation_gallery


def select_samples(loaded: LoadedRun, data: str | None, split: str | None,
                   include_train: bool = False) -> tuple[list[Sample], str, int | None]:
    """(samples to score, split name, how many of the run's training images were left out; None: not checked)."""
    if data is None and loaded.config.continue_from and not split:  # a continual step: every class seen so far
        from pixelforge.tasks.classify.continual.sequence import seen_test_samples

        return seen_test_samples(loaded.run_dir), "seen-classes", 0
    if data is None:
        from pixelforge.tasks.classify.task import prepare_data

        source, _ = prepare_data(loaded.config)
        name = held_out_split(source, split, own_data=True)
        if not source.split(name):  # a mistyped --split: was an IndexError after an empty inference
            raise PixelforgeError(f"{loaded.config.data}: no images in split {name!r}; the run's splits: "
                                  f"{', '.join(sorted({s.split for s in source.samples if s.split}))}")
        return source.split(name), name, 0 if name != "train" else None
    source: DataSource = resolve_data(data)
    name = held_out_split(source, split, own_data=False)
    chosen = source.samples if name == "all" else source.split(name)
    if not chosen:
        raise PixelforgeError(f"{data}: no images in split {name!r}")
    unknown = sorted({s.label for s in chosen} - set(loaded.classes))
    if unknown:
        raise PixelforgeError(f"{data}: class {unknown[0]!r} is not one the model knows ({', '.join(loaded.classes)})")
    from pixelforge.tasks.classify.task import prepare_data

    kept, excluded = leave_out_training_images(chosen, lambda s: s.path,
                                               lambda: [s.path for s in prepare_data(loaded.config)[0].split("train")],
                                               data, name, include_train)
    return kept, name, excluded


def evaluate(run_dir: str | Path, data: str | None = None, split: str | None = None, out: str | Path | None = None,
             loaded: LoadedRun | None = None, groups: str | None = None, compare: str | Path | None = None,
             include_train: bool = False, cached=None) -> EvalResult:
    """Evaluate the run's best checkpoint; figures go to `out` (default RUN/eval-<split>).

    `groups` (a CSV column or a folder,group mapping file; see `pixelforge.data.groups`) adds per-group metrics;
    on the run's own split, the config's `groups` column is used when the data has it. `compare` (another run
    folder) adds a before/after table of the group metrics. With `data`, the run's training images are left out
    (counted in `excluded_training_images`) unless `include_train`. `cached`: the training's validation features
    (inference.CachedFeatures), reused when the evaluated images are exactly those.

    Example:
        >>> evaluate("runs/digits", data="digits").accuracy  # doctest: +SKIP
        0.99
    """
    loaded = loaded or load_run(run_dir)
    samples, name, excluded = select_samples(loaded, data, split, include_train)
    logits, kept, unreadable = run_inference(loaded, samples, cached=cached)
    if not kept:  # as denoise and compress say it; the figures below need one image at least
        raise PixelforgeError(f"{data or loaded.run_dir}: no readable images to evaluate ({unreadable[0]})")
    idx = {c: i for i, c in enumerate(loaded.classes)}
    targets = torch.tensor([idx[s.label] for s in kept], dtype=torch.long)
    metrics = classification_metrics(logits, targets, loaded.classes)
    metrics["split"] = name
    metrics["excluded_training_images"] = excluded
    # Scores are softmax(logits / T) with the run's fitted temperature (calibration.py); the ECE without it too:
    metrics["temperature"] = loaded.temperature
    metrics["ece_uncalibrated"] = (classification_metrics(logits * loaded.temperature, targets, loaded.classes)["ece"]
                                   if loaded.temperature != 1.0 else metrics["ece"])
    metrics["confidence_intervals"] = bootstrap_intervals(targets.numpy(), logits.argmax(1).numpy(), len(loaded.classes))
    groups = groups or (loaded.config.groups if data is None and has_groups(kept, loaded.config.groups) else None)
    if groups or compare:
        metrics["groups"] = group_report(loaded, kept, logits, targets, groups or "", data or loaded.config.data, compare)
    request = {"data": rd.data_key(data), "split": name, "groups": groups, "compare": rd.data_key(compare),
               "include_train": include_train}
    out_dir = rd.evaluation_dir(out, loaded.run_dir / f"eval-{name}", request)
    figures = {"confusion_matrix": plot_confusion(metrics["confusion_matrix"], loaded.classes, out_dir / "confusion_matrix.png")}
    mistakes = worst_mistakes(logits, targets)
    metrics["worst_mistakes"] = [
        {"path": str(kept[i].path), "label": kept[i].label, "predicted": loaded.classes[int(logits[i].argmax())],
         "score": float(logits[i].softmax(0).max())} for i in mistakes
    ]
    figures["gradcam"], metrics["faithfulness"] = explanation_gallery(loaded, kept, logits, targets, out_dir,
                                                                      graph=gallery_graph(loaded))
    if mistakes:
        figures["mistakes"] = _mistake_gallery(loaded, kept, logits, mistakes, out_dir / "mistakes.png")
    if (loaded.run_dir / "continual.json").exists():  # the sequence's accuracy matrix, BWT and forgetting
        metrics["continual"] = rd.read_json(loaded.run_dir / "continual.json")
    rd.write_json(out_dir / "metrics.json", metrics)
    return EvalResult(metrics, out_dir, figures, unreadable)


def _mistake_gallery(loaded, kept, logits, indices, path: Path) -> Path:
    from pixelforge.data.images import decode_array

    images, titles = [], []
    for i in indices:
        images.append(decode_array(kept[i].path, 128))
        probs = logits[i].softmax(0)
        titles.append(f"true {kept[i].label}\npred {loaded.classes[int(probs.argmax())]} {float(probs.max()):.2f}")
    return plot_gallery(images, titles, path, colors=["crimson"] * len(images))


def gallery_graph(loaded: LoadedRun):
    """The backbone's cached ONNX graph with its pooled map, when the gallery may use it: the head is one linear
    layer after dropout and the model runs on the CPU (explain/gallery.py; lever L22). Else None (eager Grad-CAM)."""
    from pixelforge.tasks.classify.features import cached_map_graph

    head = getattr(loaded.model, "head", None)
    linear = isinstance(head, torch.nn.Sequential) and isinstance(head[-1], torch.nn.Linear)
    if not linear or not all(isinstance(m, torch.nn.Dropout) for m in list(head)[:-1]):
        return None
    if next(loaded.model.parameters()).device.type != "cpu":
        return None
    return cached_map_graph(loaded.model.backbone, loaded.config.img_size)
