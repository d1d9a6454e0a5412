"""`pixelforge.stylize`: neural style transfer on one photo (what `pixelforge stylize` runs), by optimisation (Gatys),
a trained fast network (a `--task style` run or its package), or Magenta's arbitrary network.

Every method reports the same numbers, measured with the same loss network (`loss_net`): seconds of stylization,
content loss and style loss (tasks/style/methods.py).
"""

from __future__ import annotations

from pathlib import Path

from pixelforge.errors import PixelforgeError


def stylize(first: str | Path, second: str | Path, out: str | Path, method: str = "auto", size: int = 512,
            steps: int = 300, optimizer: str = "lbfgs", lr: float = 0.02, init: str = "content", scales: int = 2,
            content_weight: float = 1.0, style_weight: float = 10.0, tv_weight: float = 1e-2,
            preserve_colour: bool = False, loss_net: str = "tf_efficientnet_lite0", weights: str | Path | None = None,
            feature_transform: str | None = None, seed: int = 0, quiet: bool = False) -> dict:
    """Stylize a photo into `out` (a new PNG) and return what `pixelforge stylize --json` prints: seconds,
    content_loss, style_loss, loss_net, feature_transform, method, out, size [w, h] (and loss_curve, the PNG of the
    optimisation's losses, for gatys).

    `first`, `second`: the content photo and the style image (arbitrary: also a built-in style "0".."25" or a blend
    "3:0.5,12:0.5"); or a style run / package and then the content photo. `method`: gatys | arbitrary | fast (auto:
    fast after a run/package, else gatys). The other options are the command's, with its defaults; `quiet` hides
    the progress bar (shown only on a terminal).

    Example:
        >>> stylize("photo.jpg", "style.jpg", "styled.png", size=256, steps=100)["style_loss"]  # doctest: +SKIP
        0.0123
    """
    import torch

    from pixelforge.deploy.runtime.package import is_package
    from pixelforge.runs.folder import new_output_file
    from pixelforge.tasks.style import methods
    from pixelforge.tasks.style.gatys import Weights
    from pixelforge.tasks.style.images import check_output_name, read_image, save_image
    from pixelforge.tasks.style.lossnet import build_loss_network

    first, second, out = str(first), str(second), Path(out)
    weights = Path(weights) if weights is not None else None
    model_first = _is_style_model(first)
    if Path(first).is_dir() != model_first:  # a folder that is not a model
        if (Path(first) / "config.yaml").is_file():  # a run of another task is a run: "neither a run" misled
            from pixelforge.runs.files import run_task_name

            raise PixelforgeError(f"{first}: a {run_task_name(first)!r} run, not a style run; stylize takes a run of "
                                  "`pixelforge train --task style` (or its package) first, or a content photo")
        raise PixelforgeError(f"{first}: a folder, but neither a style run (`pixelforge train --task style --out`) "
                              "nor a package (`pixelforge export`); pass a content photo or one of those")
    if not model_first and _is_style_model(second, style_only=True):  # swapped: "is a folder" did not say so
        kind = "package" if is_package(second) else "run"
        raise PixelforgeError(f"{second}: a style {kind} in the style image's place; a run or package goes first: "
                              f"pixelforge stylize {second} CONTENT --out OUT.png")
    method = ("fast" if model_first else "gatys") if method == "auto" else method
    if method not in ("gatys", "arbitrary", "fast"):
        raise PixelforgeError(f"--method {method!r}: choose gatys, arbitrary or fast")
    if (method == "fast") != model_first:
        raise PixelforgeError(f"{first}: --method fast takes a style run or package first, then the content photo"
                              if method == "fast" else f"{first}: a run/package stylizes with --method fast (or auto)")
    check_output_name(out)
    new_output_file(out)
    long_side = size or None
    content_path = second if method == "fast" else first
    content = read_image(content_path, long_side)
    _refuse_beyond_memory(content, content_path, method)
    if feature_transform is None:
        feature_transform = methods.trained_feature_transform(first) if method == "fast" else "none"
    lossnet = build_loss_network(loss_net, str(weights) if weights else None, feature_transform=feature_transform)
    loss_weights = Weights(content_weight, style_weight, tv_weight)
    if method == "fast":
        result, style_path = methods.fast(first, content)
        style = read_image(style_path, max(content.shape[-2:])) if style_path else None
    else:
        style = methods.read_style(second, max(content.shape[-2:]), builtin_ok=method == "arbitrary")
        if method == "arbitrary":
            result = methods.arbitrary(content, style)
        elif isinstance(style, str):
            raise PixelforgeError(f"{second}: built-in styles are for --method arbitrary; gatys needs a style image")
        else:
            with torch.random.fork_rng():
                result = _gatys_with_progress(methods, lossnet, content, style, loss_weights, steps=steps,
                                              optimizer=optimizer, init=init, scales=scales, lr=lr,
                                              preserve_colour=preserve_colour, seed=seed, quiet=quiet)
        style = style if isinstance(style, torch.Tensor) else None
    methods.score(result, lossnet, content, style, loss_weights)
    save_image(result.image, out)
    curve = _save_curve(result.history, out) if result.history else None
    losses = result.losses
    summary = {"seconds": round(result.seconds, 4), "content_loss": losses["content"], "style_loss": losses["style"],
               "loss_net": lossnet.name, "feature_transform": lossnet.feature_transform, "method": result.method,
               "out": str(out), "size": list(result.image.shape[-2:][::-1])}
    if curve is not None:
        summary["loss_curve"] = str(curve)
    return summary


def _is_style_model(path: str, style_only: bool = False) -> bool:
    """A style run or a package: of any task unless `style_only` (`fast` names another task's package itself)."""
    from pixelforge.deploy.runtime.package import is_package, read_json_file
    from pixelforge.tasks.style.apply import is_style_run

    if not Path(path).is_dir():
        return False
    if is_package(path):
        return not style_only or read_json_file(Path(path) / "package.json").get("task") == "style"
    return is_style_run(path)


# Optimisation's peak memory: the image, its gradient, L-BFGS's history and the loss network's activations at every
# scale. Measured on Lite0 (2.8 GB at 1024 px, 7.8 GB at 2048 px, square): a base and a cost per megapixel.
GATYS_BASE_GB, GATYS_GB_PER_MEGAPIXEL = 1.0, 1.8
# The other methods' peak is scoring the output with the loss network at the content's size (the package's output
# is shrunk to its max_side, the score is not). Peak RSS (`/usr/bin/time -v pixelforge stylize ... --size 0`): a
# run 1.0 GB at 512x344, 2.1 GB at 1500x1000, 5.8 GB at 3000x2000; a package and arbitrary 5.8-5.9 GB there too.
SCORE_GB_PER_MEGAPIXEL = 0.85


def _refuse_beyond_memory(content, path, method: str) -> None:
    """One line before stylizing an image that needs more RAM than is free: Linux's OOM killer ends such a
    process with no message at all (`--size 0` on a 72-megapixel photo passed 8 GB and was still growing)."""
    from pixelforge.engine.cpu_memory import available_memory_bytes

    free = available_memory_bytes()
    height, width = content.shape[-2:]
    per_megapixel = GATYS_GB_PER_MEGAPIXEL if method == "gatys" else SCORE_GB_PER_MEGAPIXEL
    need = GATYS_BASE_GB + per_megapixel * width * height / 1e6
    if free is None or need <= free / 2**30:
        return
    fits = (0.9 * free / 2**30 - GATYS_BASE_GB) / per_megapixel * 1e6  # pixels, with a tenth spare
    longest = int((fits * max(width, height) / min(width, height)) ** 0.5) // 32 * 32 if fits > 0 else 0
    advice = f"pass --size {longest} or less (the longer side in px)" if longest >= 64 else "free some memory first"
    how = "by optimisation" if method == "gatys" else f"with --method {method} and scoring it"
    raise PixelforgeError(f"{path}: stylizing {width}x{height} {how} needs about {need:.1f} GB of RAM and "
                          f"{free / 2**30:.1f} GB are free; {advice}")


def _gatys_with_progress(methods, lossnet, content, style, loss_weights, quiet: bool, **options):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    # On stderr, and only on a terminal: off one a bar left blank lines (and on stdout it mixed with the output).
    console = Console(stderr=True)
    with Progress(TextColumn("stylizing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeRemainingColumn(), console=console, transient=True,
                  disable=quiet or not console.is_terminal) as bar:
        task = bar.add_task("", total=options["steps"])

        def advance(n, row):
            bar.update(task, advance=n, description=f"loss {row['total']:.4f} (scale {row['scale'] + 1})")

        return methods.gatys(lossnet, content, style, progress=advance, weights=loss_weights, **options)


def _save_curve(history: list[dict], out: Path) -> Path:
    """OUT.losses.csv and OUT.losses.png (the loss at every evaluation, per term); returns the PNG's path.

    `--out` is new, but another output with its stem (`cat.jpg` after `cat.png`) has these two names already: then
    OUT.losses-2.csv and .png, the first number free for both, as default names are numbered elsewhere."""
    import csv

    import matplotlib

    from pixelforge.output_names import numbered

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = next(b for b in numbered(out.with_name(f"{out.stem}.losses"), keep_suffix=False)
                if not b.with_name(f"{b.name}.csv").exists() and not b.with_name(f"{b.name}.png").exists())
    with open(base.with_name(f"{base.name}.csv"), "x", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    figure, axis = plt.subplots(figsize=(6, 3.5))
    steps = [row["step"] for row in history]
    for key in ("total", "content", "style", "tv"):
        axis.plot(steps, [row[key] for row in history], label=key)
    axis.set_yscale("log")
    axis.set_xlabel("loss evaluation")
    axis.legend()
    axis.set_title("stylize by optimisation: losses (coarse to fine)")
    figure.tight_layout()
    figure.savefig(base.with_name(f"{base.name}.png"), dpi=100)
    plt.close(figure)
    return base.with_name(f"{base.name}.png")
