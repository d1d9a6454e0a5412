"""`pixelforge zeroshot IMAGES --labels "ant,bee"`: label images by class names alone, with a CLIP.

The CLIP is a pretrained open_clip model from local files (`--clip NAME|CONFIG.json --clip-weights FILE|TAG`,
models/open_clip_hub.py) or a run of `--task clip` (`--run RUN`). Prompts come from templates ("a photo of a {}.")
and each label's text embedding is the mean of its prompts' normalised embeddings (models/zeroshot.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

# The work is in api/zeroshot.py (`pixelforge.zeroshot`); these names stay importable from here.
from pixelforge.api.zeroshot import (classify_images, image_files, load_zero_shot_model, refuse_all_failed,
                                     unknown_label_words)


def zeroshot_command(
    images: list[Path] = typer.Argument(..., help="Image files or folders."),
    labels: str = typer.Option(..., help='Comma-separated class names, e.g. "ant,bee"; quote a name that holds a '
                                           'comma: \'"red, ripe apple",pear\'.'),
    run: Optional[Path] = typer.Option(None, help="A --task clip run folder, or its package from `pixelforge "
                                                   "export` (torch-free), instead of --clip."),
    clip: Optional[str] = typer.Option(None, help="open_clip model name (default ViT-B-32), an open_clip model "
                                                  "config .json, or local-dir:FOLDER (open_clip's folder format)."),
    clip_weights: Optional[str] = typer.Option(None, help="Local weights file, or a pretrained tag found in the local "
                                                          "cache (default: the model's first tag, e.g. openai)."),
    templates: str = typer.Option("default", help="default (the model's prompt ensemble) | none (the bare label) | "
                                                  "FILE with one {} template a line."),
    top: int = typer.Option(3, "--top-k", min=1, help="Best labels listed per image."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON list, an object per image."),
) -> None:
    """Zero-shot classification: each image gets the label whose prompts' text embedding is closest to it."""
    from pixelforge.models.prompts import parse_labels, read_templates

    names = parse_labels(labels)
    files = image_files(images)
    zs = load_zero_shot_model(run, clip, clip_weights)
    unknown = unknown_label_words(zs, names)
    if unknown:  # scored on the prompts' other words alone: a label the model cannot read, said before the answers
        listed = "; ".join(f"{label!r}: {', '.join(found)}" for label, found in unknown.items())
        typer.echo(f"warning: --labels: words this model never saw in training, read as <unk>: {listed}", err=True)
    results = classify_images(zs, files, names, read_templates(templates, zs.templates), top)
    refuse_all_failed(results)
    if as_json:
        typer.echo(json.dumps(results))
    for r in [] if as_json else results:
        if "error" in r:
            reason = r["error"].removeprefix(f"{r['path']}: ")  # ImageReadError's message names the file
            typer.echo(f"{r['path']}: error: {reason}", err=True)  # predict's and fewshot's line
            continue
        others = ", ".join(f"{t['label']} {t['score']:.3f}" for t in r["top_k"][1:])
        typer.echo(f"{r['path']}: {r['label']} ({r['score']:.3f})" + (f"  [{others}]" if others else ""))
    if any("error" in r for r in results):  # as `predict` and `fewshot`: a script sees that an image was left out
        raise typer.Exit(1)
