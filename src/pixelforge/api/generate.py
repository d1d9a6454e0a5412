"""`pixelforge.generate`: new images from a GAN run (its EMA generator) or a GAN package (ONNX, without torch)."""

from __future__ import annotations

from pathlib import Path

from pixelforge.errors import PixelforgeError


def generate(run: str | Path, out: str | Path, n: int = 64, class_name: str | int | None = None, seed: int = 0,
             truncation: float | None = None, interpolate: int | None = None, seed_to: int | None = None) -> dict:
    """Write `n` generated images (OUT/NNNN[_class].png) and OUT/grid.png; what `pixelforge generate` does.

    `class_name`: a conditional run's class (name or index; default every class in turn); `truncation`: redraw noise
    beyond +-T; `interpolate`: instead, that many images between the noise of `seed` and `seed_to` (a run only).
    The same seed gives the same images. Returns {"out", "files", "grid", "classes"}.

    Example:
        >>> generate("runs/gan-digits", "gen/threes", n=100, class_name="3")["grid"]  # doctest: +SKIP
        'gen/threes/grid.png'
    """
    from pixelforge.deploy.runtime.package import is_package

    run, out = Path(run), Path(out)
    if is_package(run):
        return _from_package(run, out, n, class_name, seed, truncation, interpolate)
    return _from_run(run, out, n, class_name, seed, truncation, interpolate, seed_to)


def _from_run(run, out, n, class_name, seed, truncation, interpolate, seed_to) -> dict:
    from pixelforge.runs.files import run_task_name
    from pixelforge.tasks.registry import get_task

    task = get_task(run_task_name(run))
    if not hasattr(task, "generate"):
        raise PixelforgeError(f"{run}: a {task.name!r} run; generate needs a run of a generating task (--task gan)")
    return task.generate(run, out=out, n=n, class_name=class_name, seed=seed, truncation=truncation,
                         interpolate=interpolate, seed_to=seed_to)


def _from_package(package, out, n, class_name, seed, truncation, interpolate) -> dict:
    """The package's ONNX generator on numpy noise (deploy/runtime/gan.py): same seed, same images on any machine,
    though not the run's images for that seed (the run draws torch's noise)."""
    from pixelforge.deploy.runtime.package import package_task
    from pixelforge.deploy.runtime.registry import load_runtime

    if package_task(package) != "gan":
        raise PixelforgeError(f"{package}: a {package_task(package)!r} package; generate needs a GAN package")
    if interpolate:
        raise PixelforgeError(f"{package}: --interpolate needs the run folder (the package has no interpolation)")
    return load_runtime(package).generate_folder(out, n, class_name, seed, truncation)
