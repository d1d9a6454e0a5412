"""`pixelforge explain RUN IMAGES... --method M --out DIR`: one three-panel PNG per image, plus faithfulness scores.

The images go through exactly the run's own preprocessing (decoded so the shorter side is `short_side`, centre
cropped to `img_size`, normalized), so the heat map lines up with the pixels the model saw. `explain_images` is
the Python API behind the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pixelforge.errors import PixelforgeError
from pixelforge.explain.methods import METHODS


def _unique_png(out: Path, stem: str, taken: set[str]) -> Path:
    name, n = f"{stem}.png", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.png"
    taken.add(name)
    return out / name


def explain_images(run: str | Path, images: str | list[str], method: str = "gradcam", target: str | None = None,
                   out: str | Path | None = None, faithfulness: bool = True, steps: int = 10) -> list[dict]:
    """What `pixelforge explain` does (`pixelforge.explain_images`; `pixelforge.explain` is this package): explain
    each image's predicted class (or `target`) with `method`; write OUT/<image name>.png for each.

    `images`: files, folders or glob patterns. `out`: a new (or empty) folder; default explanations, numbered
    (explanations-2, ...) past earlier ones; never overwritten. Returns one dict per image: path, png, predicted,
    score, explained, and the deletion/insertion scores (an unreadable image: path and error); OUT/faithfulness.json
    holds the same rows and their means. A captioning run explains each word's attention instead: path, caption,
    png per image.

    Example:
        >>> rows = explain_images("runs/hymenoptera", ["bee.jpg"], "gradcam", out="why")  # doctest: +SKIP
        >>> rows[0]["png"]  # doctest: +SKIP
        'why/bee.png'
    """
    from pixelforge.runs.files import run_task_name
    from pixelforge.runs.folder import output_path
    from pixelforge.tasks.registry import get_task

    images = [images] if isinstance(images, (str, Path)) else list(images)
    task = get_task(run_task_name(Path(run)))
    own = getattr(task, "explain_images", None)  # a task with its own explanation
    if own is None and not task.heat_maps:
        raise PixelforgeError(f"{run}: explain draws heat maps of image classifiers (and captioning's attention); "
                              f"this is a {task.name!r} run")
    out = output_path(out, "explanations")
    if own is not None:
        return own(run, images, out)
    return _explain_classifier(run, images, method, target, out, faithfulness, steps)


def _explain_classifier(run: str | Path, images: list[str], method: str, target: str | None, out: Path,
                        faithfulness: bool, steps: int) -> list[dict]:
    """A classifier's heat maps: one row per image, OUT/<image name>.png, OUT/faithfulness.json."""
    import numpy as np

    from pixelforge.data.dataset import decode_resized
    from pixelforge.data.images import ImageReadError
    from pixelforge.data.sources import collect_paths
    from pixelforge.explain.methods import check_method
    from pixelforge.runs import folder as rd
    from pixelforge.tasks.classify.inference import load_run

    check_method(method)
    files = collect_paths(list(images))
    if not files:
        raise PixelforgeError(f"no images found in {', '.join(map(str, images))}")
    loaded = load_run(run)
    classes = loaded.classes
    if target is not None and target not in classes:
        raise PixelforgeError(f"--target {target!r} is not a class of {run} ({', '.join(classes)})")
    loaded.model.eval()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, taken = [], set()
    for file in files:
        try:
            pixels = decode_resized(Path(file), loaded.short_side)
        except ImageReadError as exc:
            rows.append({"path": file, "error": str(exc)})
            continue
        explained = classes.index(target) if target is not None else None
        rows.append(_explain_one(loaded, file, pixels, method, explained, faithfulness, steps, out_dir, taken))
    done = [r for r in rows if "error" not in r]
    if faithfulness and done:
        means = {k: round(float(np.mean([r[k] for r in done])), 4) for k in done[0] if k.endswith("_auc")}
        rd.write_json(out_dir / "faithfulness.json", {"run": str(run), "method": method, "steps": steps,
                                                      "mean": means, "images": rows})
    return rows


def _explain_one(loaded, file: str, pixels, method: str, explained: int | None, faithfulness: bool, steps: int,
                 out_dir: Path, taken: set) -> dict:
    """One image: the prediction, the heat map of `explained` (default: the predicted class), its PNG and scores."""
    import numpy as np
    import torch
    from torchvision.transforms.v2.functional import center_crop

    from pixelforge.explain.faithfulness import faithfulness_summary
    from pixelforge.explain.methods import heatmaps
    from pixelforge.explain.overlay import save_explanation

    model, classes, size = loaded.model, loaded.classes, loaded.config.img_size
    x = loaded.transform(pixels)[None]
    with torch.no_grad():  # the run's calibrated score (RUN/calibration.json), the one `predict` gives
        probs = (model(x).float() / loaded.temperature).softmax(1)[0]
    predicted = int(probs.argmax())
    explained = predicted if explained is None else explained
    heat = heatmaps(model, x, [explained], method)
    scores = faithfulness_summary(model, x, heat, [explained], steps) if faithfulness else None
    parent = Path(file).parent.name
    image = center_crop(pixels, [size, size]).permute(1, 2, 0).numpy()
    png = _unique_png(out_dir, Path(file).stem, taken)
    save_explanation(np.ascontiguousarray(image), heat[0], png, method, classes[predicted], float(probs[predicted]),
                     classes[explained], parent if parent in classes else None, scores)
    row = {"path": file, "png": str(png), "predicted": classes[predicted], "score": round(float(probs[predicted]), 6),
           "explained": classes[explained]}
    if scores:
        row.update({k: v for k, v in scores.items() if k.endswith("_auc")})
    return row


def explain(
    run: Path = typer.Argument(..., help="Run folder written by `pixelforge train`."),
    images: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    method: str = typer.Option("gradcam", help=f"{' | '.join(METHODS)}. scorecam runs one forward pass per channel "
                                               "of the target layer: minutes per image on a CPU."),
    target: Optional[str] = typer.Option(None, help="Class to explain (default: each image's predicted class)."),
    out: Optional[Path] = typer.Option(None, help="Folder for the PNGs (one per image) and faithfulness.json "
                                       "(default explanations, or explanations-2... when it exists); never "
                                       "overwritten."),
    faithfulness: bool = typer.Option(True, "--faithfulness/--no-faithfulness",
                                      help="Score each heat map by deletion/insertion against a random order."),
    steps: int = typer.Option(10, min=2, help="Deletion/insertion steps (forward passes per image: 4 x (steps+1))."),
) -> None:
    """Heat maps of what the model looked at: image | heat map | overlay, one PNG per image (captioning runs: each
    word's attention over the image)."""
    rows = explain_images(run, images, method, target, out, faithfulness, steps)
    heat_maps = [r for r in rows if "error" not in r and "caption" not in r]
    for row in rows:
        if "error" in row:
            typer.echo(f"{row['path']}: skipped ({row['error']})")
            continue
        if "caption" in row:  # a task's own explanation (captioning's attention)
            typer.echo(f"{row['path']}: {row['caption']} -> {row['png']}")
            continue
        scores = (f"; deletion {row['deletion_auc']:.3f} (random {row['random_deletion_auc']:.3f}), insertion "
                  f"{row['insertion_auc']:.3f} (random {row['random_insertion_auc']:.3f})") if faithfulness else ""
        typer.echo(f"{row['path']}: predicted {row['predicted']} {row['score']:.3f}, explained {row['explained']}"
                   f"{scores} -> {row['png']}")
    if faithfulness and heat_maps:
        typer.echo("faithfulness (deletion: lower is better; insertion: higher is better): "
                   f"{Path(heat_maps[0]['png']).parent / 'faithfulness.json'}")
