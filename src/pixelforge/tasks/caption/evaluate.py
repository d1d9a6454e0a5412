"""Scoring captions: a run's best checkpoint on a split (`evaluate RUN`), or a COCO results file made anywhere
against COCO-captions ground truth (`evaluate --task caption --gt CAPTIONS.json --predictions RESULTS.json`).

Both give corpus BLEU-1..4 (0-100, all references of each image; metrics/captions.py), CIDEr-D where
pycocoevalcap is installed, the number of images, and on the built-in shapes set the attribute match. A run's evaluation also writes results.json (COCO results:
image_id, caption), the gallery and the attention strips.
"""

from __future__ import annotations

import json
from pathlib import Path

from pixelforge.errors import PixelforgeError
from pixelforge.metrics.captions import attribute_match, coco_scores, corpus_bleu
from pixelforge.runs import folder as rd
from pixelforge.runs.result import EvalResult

GALLERY_IMAGES = 12
STRIP_IMAGES = 4


def score_captions(hypotheses: list[str], references: list[list[str]], objects: list | None = None) -> dict:
    metrics = {k: round(v, 4) for k, v in {**corpus_bleu(hypotheses, references),
                                            **coco_scores(hypotheses, references)}.items()}
    if objects is not None and all(objects):
        metrics["attribute_match"] = round(attribute_match(hypotheses, objects), 4)
    metrics["num_images"] = len(hypotheses)
    return metrics


def score_result_files(gt: Path, predictions: Path) -> dict:
    """A COCO results JSON ([{image_id, caption}]) against a COCO-captions JSON; every gt image needs one caption."""
    from pixelforge.data.captions.reader import _load_json

    truth = _load_json(Path(gt))
    refs: dict = {}
    for ann in truth["annotations"]:
        refs.setdefault(ann["image_id"], []).append(str(ann.get("caption", "")))
    objects = {i["id"]: i.get("objects") for i in truth["images"]}
    try:
        results = json.loads(Path(predictions).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PixelforgeError(f"{predictions}: cannot read COCO results ({exc})") from None
    if not isinstance(results, list) or not all(isinstance(r, dict) and "image_id" in r and "caption" in r for r in results):
        raise PixelforgeError(f"{predictions}: COCO caption results are a list of {{image_id, caption}}")
    by_image = {}
    for r in results:
        if r["image_id"] not in refs:
            raise PixelforgeError(f"{predictions}: image_id {r['image_id']!r} has no captions in {gt}")
        if r["image_id"] in by_image:
            raise PixelforgeError(f"{predictions}: image_id {r['image_id']!r} has two captions; give one per image")
        by_image[r["image_id"]] = str(r["caption"])
    missing = [i for i in refs if i not in by_image]
    if missing:
        raise PixelforgeError(f"{predictions}: no caption for {len(missing)} of {len(refs)} images of {gt} "
                              f"(first: image_id {missing[0]}); caption every image")
    ids = sorted(refs, key=str)
    return score_captions([by_image[i] for i in ids], [refs[i] for i in ids], [objects.get(i) for i in ids])


def _select(run, data: str | None, split: str | None):
    from pixelforge.data.captions.reader import assign_splits, read_captions
    from pixelforge.tasks.caption.task import prepare_data

    if data is None:
        source, _ = prepare_data(run.config)
    else:
        source = assign_splits(read_captions(data), run.config.val_fraction, run.config.test_fraction, run.config.seed)
    name = split or ("test" if source.split("test") else "val")
    images = source.split(name)
    if not images:
        raise PixelforgeError(f"{data or run.config.data}: no captioned images in split {name!r}")
    return images, name


def evaluate_captions(run_dir, data: str | None = None, split: str | None = None, out=None, beam: int | None = None,
                      length_penalty: float | None = None, progress: bool = True,
                      include_train: bool = False) -> EvalResult:
    """Caption the split (default test, else val) with beam search and score it; figures in `out` (RUN/eval-SPLIT).

    `data` without splits gets the run's seeded split, so the run's own data is scored on its held-out images; the
    run's training images in any other `data` (a copy, a file of the training split) are left out too (counted in
    `excluded_training_images`) unless `include_train`."""
    from pixelforge.data.images import ImageReadError, load_rgb
    from pixelforge.tasks.caption.inference import load_caption_run
    from pixelforge.tasks.caption.task import prepare_data
    from pixelforge.tasks.common.held_out import leave_out_training_images
    from pixelforge.viz.captions import plot_attention_strips, plot_caption_gallery

    run = load_caption_run(run_dir)
    images, name = _select(run, data, split)
    images, excluded = leave_out_training_images(images, lambda i: Path(i.path), lambda: [
        i.path for i in prepare_data(run.config)[0].split("train")], data, name, include_train)
    rows, unreadable = [], []
    for image in images:
        try:
            pixels = load_rgb(image.path)
        except ImageReadError as exc:
            unreadable.append(str(exc))
            continue
        hyp = run.decode(pixels, beam, length_penalty)
        rows.append((image, pixels, hyp, " ".join(run.words(hyp))))
    metrics = score_captions([r[3] for r in rows], [r[0].captions for r in rows], [r[0].objects for r in rows])
    metrics.update({"split": name, "excluded_training_images": excluded, "beam": beam or run.config.beam,
                    "length_penalty": run.config.length_penalty if length_penalty is None else length_penalty})
    request = {"data": rd.data_key(data), "split": name, "beam": metrics["beam"], "length_penalty": metrics["length_penalty"],
               **({"include_train": True} if include_train else {})}
    out_dir = rd.evaluation_dir(out, run.run_dir / f"eval-{name}", request)
    rd.write_json(out_dir / "results.json", [{"image_id": r[0].id, "caption": r[3]} for r in rows])
    rd.write_json(out_dir / "metrics.json", metrics)
    from pixelforge.data.captions.shapes import attribute_pairs

    wrong = [r for r in rows if r[0].objects and attribute_pairs(r[3]) != sorted((o["colour"], o["shape"]) for o in r[0].objects)]
    shown = (wrong[: GALLERY_IMAGES // 2] + [r for r in rows if r not in wrong])[:GALLERY_IMAGES] if wrong else rows[:GALLERY_IMAGES]
    figures = {}
    if rows:
        figures["gallery"] = plot_caption_gallery([(r[1], r[3], r[0].captions) for r in shown], out_dir / "gallery.png")
        figures["attention"] = plot_attention_strips(
            [(r[1], run.words(r[2]), r[2].alphas) for r in rows[:STRIP_IMAGES]], out_dir / "attention.png")
    return EvalResult(metrics, out_dir, figures, unreadable)
