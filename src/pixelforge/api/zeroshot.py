"""`pixelforge.zeroshot`: label images by class names alone, with a CLIP (what `pixelforge zeroshot` runs).

The CLIP is a pretrained open_clip model from local files (`clip=NAME|CONFIG.json`, `clip_weights=FILE|TAG`,
models/open_clip_hub.py), a run of `--task clip` or its package (`run=`). Prompts come from templates ("a photo of
a {}.") and each label's text embedding is the mean of its prompts' normalised embeddings (models/zeroshot.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from pixelforge.errors import PixelforgeError


def zeroshot(images, labels: str | list[str], run: str | Path | None = None, clip: str | None = None,
             clip_weights: str | None = None, templates: str = "default", top_k: int = 3) -> list[dict]:
    """One dict per image, as `pixelforge zeroshot --json` prints: path, label, score, top_k [{label, score}] (an
    unreadable image: path and error). `images`: files or folders (one, or a list); `labels`: a list of class names
    or the CLI's comma-separated string; `run`: a `--task clip` run or package, else `clip`/`clip_weights`.

    Example:
        >>> zeroshot("photos", ["ant", "bee"], clip="ViT-B-32", clip_weights="open_clip.bin")[0]["label"]  # doctest: +SKIP
        'bee'
    """
    from pixelforge.models.prompts import parse_labels, read_templates

    names = parse_labels(labels) if isinstance(labels, str) else list(labels)
    paths = [images] if isinstance(images, (str, Path)) else images
    files = image_files([Path(p) for p in paths])
    zs = load_zero_shot_model(Path(run) if run is not None else None, clip, clip_weights)
    unknown = unknown_label_words(zs, names)
    if unknown:
        logging.getLogger(__name__).warning("labels: words this model never saw in training, read as <unk>: %s",
                                            "; ".join(f"{label!r}: {', '.join(found)}" for label, found in unknown.items()))
    results = classify_images(zs, files, names, read_templates(templates, zs.templates), top_k)
    refuse_all_failed(results)
    return results


def refuse_all_failed(results: list[dict]) -> None:
    """Nothing labelled: predict's and fewshot's one line (the CLI's exit code 2)."""
    failed = [r for r in results if "error" in r]
    if failed and len(failed) == len(results):
        raise PixelforgeError(f"none of the {len(failed)} file(s) given could be predicted: {failed[0]['error']}"
                              + (f" (and {len(failed) - 1} more failed)" if len(failed) > 1 else ""))


def image_files(paths: list[Path]) -> list[Path]:
    """Files as given; folders expanded to their image files (sorted, recursively)."""
    from pixelforge.data.images import list_images
    from pixelforge.data.sources import refuse_unread_formats

    files, folders = [], []
    for path in paths:
        if path.is_dir():
            # The data readers' listing, not an rglob of its own: that one entered hidden folders (.AppleDouble's
            # resource forks, named like the photos, became errors and exit code 1) and skipped .gif, .jfif, .avif.
            files += list_images(path)
            folders.append(path)
        elif path.is_file():
            files.append(path)
        else:
            raise PixelforgeError(f"{path}: no such image file or folder")
    if not files:
        refuse_unread_formats(folders)  # a folder of iPhone .HEIC photos is named as such, as `predict` names it
        raise PixelforgeError(f"{', '.join(map(str, paths))}: no images found")
    return files


def load_zero_shot_model(run: Optional[Path], clip: Optional[str], clip_weights: Optional[str]):
    """A run's or an open_clip model's `models.zeroshot.ZeroShotModel`, or a clip package's torch-free runtime."""
    if run is not None:
        if clip or clip_weights:
            raise PixelforgeError("zeroshot: give either --run or --clip/--clip-weights, not both")
        from pixelforge.deploy.runtime.package import is_package

        if is_package(run):
            from pixelforge.deploy.runtime.registry import load_runtime

            runtime = load_runtime(run)
            if not hasattr(runtime, "class_embeddings"):
                raise PixelforgeError(f"{run}: a {runtime.task!r} package; zeroshot needs a clip package")
            return runtime
        from pixelforge.runs.files import run_task_name
        from pixelforge.tasks.registry import get_task

        task = get_task(run_task_name(run))
        if not hasattr(task, "zero_shot_model"):
            raise PixelforgeError(f"{run}: a {task.name!r} run; zeroshot needs a run of --task clip")
        return task.zero_shot_model(run)
    from pixelforge.models.open_clip_hub import load_open_clip

    return load_open_clip(clip or "ViT-B-32", clip_weights)


def top_k(scores: np.ndarray, labels: list[str], k: int) -> list[dict]:
    """Per image: label, score, and the k best [{label, score}]."""
    results = []
    for row in scores:
        best = [{"label": labels[i], "score": round(float(row[i]), 6)} for i in np.argsort(-row, kind="stable")[:k]]
        results.append({"label": best[0]["label"], "score": best[0]["score"], "top_k": best})
    return results


def classify_images(zs, files: list[Path], labels: list[str], templates: list[str], k: int) -> list[dict]:
    """One dict per image: path, label, score, top_k (unreadable images: path and error). `zs`: a ZeroShotModel
    (PyTorch) or a clip package's runtime (numpy)."""
    from pixelforge.data.images import ImageReadError, load_rgb

    classes = zs.class_embeddings(labels, templates)
    refuse_labels_alike(np.asarray(classes), labels)
    images, results = [], []
    for path in files:
        try:
            images.append((path, load_rgb(path)))
        except ImageReadError as exc:
            results.append({"path": str(path), "error": str(exc)})
    if images:
        if hasattr(zs, "package"):
            scores = zs.scores([pixels for _, pixels in images], labels, templates, classes=classes)
        else:
            scores = zs.scores(zs.image_embeddings([pixels for _, pixels in images]), classes).numpy()
        results += [{"path": str(path), **row} for (path, _), row in zip(images, top_k(scores, labels, k))]
    order = {str(p): i for i, p in enumerate(files)}
    return sorted(results, key=lambda r: order[r["path"]])


def unknown_label_words(zs, labels: list[str]) -> dict[str, list[str]]:
    """Per label, its words that a run's word tokenizer never saw in training (each reads as `<unk>`); empty for a
    hub CLIP, whose byte-pair tokenizer encodes any word. `zs`: a ZeroShotModel or a clip package's runtime."""
    from pixelforge.data.captions.tokenizer import words

    known = getattr(getattr(zs, "tokenizer", None), "index", None)
    if known is None:
        return {}
    return {label: unknown for label in labels if (unknown := [w for w in words(label) if w not in known])}


def refuse_labels_alike(classes: np.ndarray, labels: list[str]) -> None:
    """One line for two labels the model embeds identically ([D, C] `classes`): words a run's tokenizer does not know
    (`zebra`, `giraffe`: both `<unk>`), a difference of case or spaces the tokenizer drops (`bee,Bee`). They tied at
    one score on every image, and the first was always printed as the answer."""
    for i in range(len(labels)):
        for j in range(i):
            if np.allclose(classes[:, i], classes[:, j], atol=1e-6):
                raise PixelforgeError(f"--labels: {labels[j]!r} and {labels[i]!r} give this model the same text "
                                      f"(words it does not know, or only case and spaces differ); it cannot tell "
                                      f"them apart, so use words it was trained on")
