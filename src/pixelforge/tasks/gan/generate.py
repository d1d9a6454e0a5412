"""`pixelforge generate RUN`: PNGs and a grid from the run's EMA generator, reproducible by seed; or an
interpolation between the noise of two seeds."""

from __future__ import annotations

from pathlib import Path

import torch

from pixelforge.errors import PixelforgeError


def _new_folder(out: Path) -> Path:
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PixelforgeError(f"{out}: exists and is a file or not empty; choose a new --out (nothing is overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def generate_to_folder(run_dir, *, out, n: int = 64, class_name: str | None = None, seed: int = 0,
                       truncation: float | None = None, interpolate: int | None = None,
                       seed_to: int | None = None) -> dict:
    """Write `n` images (class `class_name` only, or every class in turn) as OUT/NNNN.png plus OUT/grid.png; with
    `interpolate` STEPS, the images between the noise of `seed` and `seed_to` (default seed + 1), spherically.

    Returns {"out", "files", "grid", "classes"}.

    Example:
        >>> generate_to_folder("runs/gan-cond-digits", out="gen", n=10, class_name="3")["files"][0]  # doctest: +SKIP
        'gen/0000_3.png'
    """
    from pixelforge.tasks.gan.images import save_grid, save_pngs
    from pixelforge.tasks.gan.models import sample_noise
    from pixelforge.tasks.gan.run import class_index, load_gan_run, requested_labels
    from pixelforge.tasks.gan.task import generate

    if n < 1:
        raise PixelforgeError(f"--n {n}: give 1 or more images")
    if truncation is not None and truncation <= 0:
        raise PixelforgeError(f"--truncation {truncation}: give a positive number such as 1.0")
    run = load_gan_run(run_dir)
    wanted = class_index(run, class_name)
    out = _new_folder(Path(out))
    if interpolate:
        a = sample_noise(1, run.latent_dim, torch.Generator().manual_seed(seed), truncation)
        b = sample_noise(1, run.latent_dim, torch.Generator().manual_seed(seed + 1 if seed_to is None else seed_to),
                         truncation)
        z = slerp(a, b, torch.linspace(0, 1, interpolate))
        labels = requested_labels(run, interpolate, wanted if wanted is not None else (0 if run.conditional else None))
        with torch.no_grad():
            images = run.generator(z, labels)
    else:
        labels = requested_labels(run, n, wanted)
        images = generate(run.generator, n, run.latent_dim, labels, seed, truncation=truncation)
    names = [f"{i:04d}" + (f"_{run.classes[int(labels[i])]}" if labels is not None else "") + ".png"
             for i in range(len(images))]
    files = save_pngs(images, out, names)
    grid = save_grid(images, out / "grid.png", columns=min(10, len(images)))
    return {"out": str(out), "files": [str(f) for f in files], "grid": str(grid),
            "classes": [run.classes[int(i)] for i in labels] if labels is not None else None}


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between two noise vectors [1, D] at the fractions `t`: stays at the norm Gaussian
    noise has, where linear interpolation passes through low-norm noise the generator never saw."""
    a_n, b_n = a / a.norm(), b / b.norm()
    omega = torch.acos((a_n * b_n).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    t = t[:, None]
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
