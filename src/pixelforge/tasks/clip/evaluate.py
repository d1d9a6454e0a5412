"""Scoring a `--task clip` run: zero-shot classification of single-object images by colour-shape names, and
image-text retrieval.

Zero-shot labels (data with the built-in shapes set's per-image "objects"): every image of the split that holds
exactly one object is labelled "<colour> <shape>"; the candidate labels are every colour crossed with every shape
that occurs in the dataset (5 x 4 = 20 on the built-in set), so chance is 1 / 20. On the built-in set every test
image holds a colour-shape pair that training never shows, so each single-object test image is such a pair: the
accuracy measures naming a combination the model has only seen apart. It is reported with the run's prompt
ensemble, with its first template alone, and with the bare label, beside the chance level; `held_out_accuracy`
restricts the candidates to the pairs absent from training.

Retrieval (any captioned data): recall@1 and @5 of image->text and text->image among the split's images, each
with its first caption (identical captions count as the same answer).
"""

from __future__ import annotations

from pathlib import Path

import torch

from pixelforge.engine.devices import on_inference_device
from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd
from pixelforge.runs.result import EvalResult

GALLERY_IMAGES = 16


def _label(image) -> str | None:
    objects = image.objects or []
    return f"{objects[0]['colour']} {objects[0]['shape']}" if len(objects) == 1 else None


def candidate_labels(source) -> tuple[list[str], list[str]]:
    """(every colour x shape of the dataset's objects, those never seen together in training)."""
    objects = [o for i in source.images for o in (i.objects or [])]
    colours, shapes = sorted({o["colour"] for o in objects}), sorted({o["shape"] for o in objects})
    seen = {f"{o['colour']} {o['shape']}" for i in source.split("train") for o in (i.objects or [])}
    labels = [f"{c} {s}" for c in colours for s in shapes]
    return labels, [label for label in labels if label not in seen]


def retrieval(images: torch.Tensor, texts: torch.Tensor, captions: list[str]) -> dict:
    similarity = images @ texts.T
    same = torch.tensor([[a == b for b in captions] for a in captions])
    result = {}
    for k in (1, 5):
        k_ = min(k, len(captions))
        i2t = same.gather(1, similarity.topk(k_, dim=1).indices).any(1).float().mean()
        t2i = same.T.gather(1, similarity.T.topk(k_, dim=1).indices).any(1).float().mean()
        result[f"recall{k}_image_to_text"], result[f"recall{k}_text_to_image"] = round(float(i2t), 4), round(float(t2i), 4)
    return result


def _accuracy(zs, embeddings: torch.Tensor, labels: list[str], truth: list[str], templates: list[str]) -> tuple:
    predicted = (embeddings @ zs.class_embeddings(labels, templates).float().cpu()).argmax(1).tolist()
    names = [labels[p] for p in predicted]
    return round(sum(n == t for n, t in zip(names, truth)) / max(len(truth), 1), 4), names


def _source(cfg, data: str | None):
    from pixelforge.data.captions.reader import assign_splits, read_captions
    from pixelforge.tasks.common.captions import read_caption_source

    if data is None:
        return read_caption_source(cfg)
    return assign_splits(read_captions(data), cfg.val_fraction, cfg.test_fraction, cfg.seed)


def evaluate_clip(run_dir, data: str | None = None, split: str | None = None, out=None,
                  include_train: bool = False) -> EvalResult:
    """Retrieval and zero-shot scores of the split (default test, else val); figures in `out` (RUN/eval-SPLIT).

    `data` without splits gets the run's seeded split, so the run's own data is scored on its held-out images; the
    run's training images in any other `data` (a copy, a file of the training split, `--split train`) are left out
    too (counted in `excluded_training_images`) unless `include_train`, as caption's evaluation does."""
    from pixelforge.tasks.clip.run import load_clip_run

    zs, cfg = load_clip_run(run_dir)
    with on_inference_device(zs.model) as device:
        zs.device = str(device)  # where its prompts and images go; embeddings come back to the CPU
        return _evaluate(zs, cfg, run_dir, data, split, out, include_train)


def _evaluate(zs, cfg, run_dir, data: str | None, split: str | None, out, include_train: bool) -> EvalResult:
    from pixelforge.data.images import ImageReadError, load_rgb
    from pixelforge.tasks.common.captions import read_caption_source
    from pixelforge.tasks.common.held_out import leave_out_training_images

    source = _source(cfg, data)
    name = split or ("test" if source.split("test") else "val")
    images = source.split(name)
    if not images:
        raise PixelforgeError(f"{data or cfg.data}: no captioned images in split {name!r}")
    images, excluded = leave_out_training_images(images, lambda i: Path(i.path), lambda: [
        i.path for i in read_caption_source(cfg).split("train")], data, name, include_train)
    rows, unreadable = [], []
    for image in images:
        try:
            rows.append((image, load_rgb(image.path)))
        except ImageReadError as exc:
            unreadable.append(str(exc))
    embeddings = zs.image_embeddings([pixels for _, pixels in rows]).cpu()
    captions = [image.captions[0] for image, _ in rows]
    with torch.no_grad():
        texts = torch.cat([zs.model.encode_text(zs.tokenize(captions[k:k + 256]).to(zs.device), normalize=True)
                           .float().cpu() for k in range(0, len(captions), 256)])
    metrics = {"split": name, "num_images": len(rows), "excluded_training_images": excluded,
               **retrieval(embeddings, texts, captions)}
    request = {"data": rd.data_key(data), "split": name, **({"include_train": True} if include_train else {})}
    out_dir = rd.evaluation_dir(out, Path(run_dir) / f"eval-{name}", request)
    figures = {}
    labelled = [(k, _label(image)) for k, (image, _) in enumerate(rows) if _label(image)]
    if labelled:
        labels, held_out = candidate_labels(source)
        index, truth = [k for k, _ in labelled], [t for _, t in labelled]
        chosen = embeddings[index]
        ensemble, names = _accuracy(zs, chosen, labels, truth, zs.templates)
        metrics.update({
            "zeroshot_images": len(truth), "zeroshot_labels": len(labels), "chance": round(1 / len(labels), 4),
            "zeroshot_accuracy": ensemble,
            "zeroshot_accuracy_single_template": _accuracy(zs, chosen, labels, truth, zs.templates[:1])[0],
            "zeroshot_accuracy_bare_label": _accuracy(zs, chosen, labels, truth, ["{}"])[0],
            "templates": list(zs.templates), "held_out_labels": held_out,
            "held_out_images": sum(t in held_out for t in truth)})
        if len(held_out) > 1 and all(t in held_out for t in truth):
            metrics["held_out_accuracy"] = _accuracy(zs, chosen, held_out, truth, zs.templates)[0]
            metrics["held_out_chance"] = round(1 / len(held_out), 4)
        rd.write_json(out_dir / "zeroshot.json", [{"image_id": rows[k][0].id, "label": t, "predicted": n}
                                                  for (k, t), n in zip(labelled, names)])
        from pixelforge.viz.captions import plot_caption_gallery

        wrong = [j for j, (t, n) in enumerate(zip(truth, names)) if t != n]
        shown = (wrong[: GALLERY_IMAGES // 2] + [j for j in range(len(truth)) if j not in wrong])[:GALLERY_IMAGES]
        figures["gallery"] = plot_caption_gallery(
            [(rows[index[j]][1], ("" if truth[j] == names[j] else "WRONG: ") + names[j], [truth[j]]) for j in shown],
            out_dir / "zeroshot_gallery.png")
    rd.write_json(out_dir / "metrics.json", metrics)
    return EvalResult(metrics, out_dir, figures, unreadable)
