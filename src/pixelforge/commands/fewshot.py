"""`pixelforge fewshot` and the episodic form of `pixelforge evaluate` (--task fewshot --ways --shots --episodes).

    pixelforge fewshot --support SUPPORT/ --query QUERY/ [--shots 5] [--tta] [--finetune-head] [--json] [--out DIR]
    pixelforge evaluate --task fewshot --data digits --ways 5 --shots 5 --episodes 600 [--json]

The work is in tasks/classify/fewshot/; this module turns options into calls and results into text or JSON.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from pixelforge.errors import PixelforgeError


def _embedding_options(model: Optional[str], weights: Optional[str], img_size: Optional[int], tta: bool) -> dict:
    options = {"model": model, "weights": weights, "img_size": img_size, "tta": tta or None}
    return {k: v for k, v in options.items() if v is not None}


def _progress(as_json: bool):
    from pixelforge.engine.progress import EpochProgress

    logging.basicConfig(level=logging.WARNING if as_json else logging.INFO, format="%(message)s")
    return EpochProgress(quiet=False)


def fewshot_command(
    support: Path = typer.Option(..., help="Folder of class subfolders: the few labelled images (SUPPORT/<class>/*.jpg)."),
    query: Path = typer.Option(..., help="Images to classify: a folder of class subfolders (then scored), a folder of "
                                         "images, or one image."),
    model: Optional[str] = typer.Option(None, help="Backbone (default tf_efficientnet_lite2, bundled ImageNet weights; "
                                                   "`pixelforge models` lists them)."),
    weights: Optional[str] = typer.Option(None, help="imagenet (default), none, or a .safetensors/.pth file."),
    img_size: Optional[int] = typer.Option(None, help="Input size in pixels (default 224)."),
    shots: Optional[int] = typer.Option(None, min=1, help="Use K support images per class, a seeded sample (default: all)."),
    seed: int = typer.Option(0, help="Seed of the --shots sample."),
    tta: bool = typer.Option(False, "--tta", help="Average each image's embedding with its horizontal flip's."),
    finetune_head: bool = typer.Option(False, "--finetune-head", help="Fit a logistic-regression head on the support "
                                       "embeddings instead of prototypes (needs >= 5 images in every class)."),
    as_json: bool = typer.Option(False, "--json", help='Print {"accuracy", "n_query", "predictions": [{"path", "label", '
                                 '"score"}, ...]} (accuracy null for unlabelled queries).'),
    out: Optional[Path] = typer.Option(None, help="Folder for predictions.json, gallery.png and confusion_matrix.png "
                                                  "(never overwritten)."),
) -> None:
    """Classify query images from a few labelled support images: the nearest class prototype (mean of L2-normalised
    pretrained embeddings, cosine), or a logistic head on them. No training; scores the query if it has classes."""
    from pixelforge.tasks.classify.fewshot.predict import few_shot_predict

    result = few_shot_predict(support, query, shots=shots, seed=seed, finetune_head=finetune_head, out=out,
                              progress=_progress(as_json), **_embedding_options(model, weights, img_size, tta))
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for row in result["predictions"]:
            truth = f"  (true: {row['truth']})" if "truth" in row else ""
            typer.echo(f"{row['path']}\t{row['label']}\t{row['score']:.4f}{truth}")
        summary = (f"{result['n_query']} query image{'s' * (result['n_query'] != 1)}, {result['method']} on "
                   f"{result['model']}")
        if result["accuracy"] is not None:
            summary = f"accuracy {result['accuracy']:.4f} on " + summary
        typer.echo(summary)
        if out is not None:
            typer.echo(f"report: {out}")
    for error in result["unreadable"]:  # as `predict`: PATH: error: REASON, exit code 1
        path, _, reason = error.partition(": ")
        typer.echo(f"{path}: error: {reason}", err=True)
    if result["unreadable"]:
        raise typer.Exit(1)


def evaluate_episodes_command(task: Optional[str], data: Optional[str], as_json: bool, unused: dict | None = None,
                              **options) -> None:
    """The body of `pixelforge evaluate --task fewshot --data DIR --ways N --shots K --episodes E`."""
    from pixelforge.tasks.registry import get_task

    if task is None or data is None:
        raise PixelforgeError("evaluate --ways/--shots/--episodes: give --task fewshot and --data DIR (or digits)")
    given_unused = [name for name, value in (unused or {}).items() if value is not None]
    if given_unused:  # said rather than silently ignored: episodes use every image of --data and write nothing
        raise PixelforgeError(f"evaluate --task fewshot --ways/--shots/--episodes: {', '.join(given_unused)} is not "
                              f"used by episodic evaluation (it scores every image of --data); drop it")
    given = {k: v for k, v in options.items() if v is not None}
    runner = get_task(task)
    metrics = runner.evaluate_episodes(data, progress=_progress(as_json), **given)
    typer.echo(json.dumps(metrics) if as_json else runner.format_metrics(metrics))
