"""`pixelforge evaluate` for compression runs: real files on full-resolution images, against JPEG and WebP.

For each image the run writes a real .pfc file (its bpp is the file's bits over the pixels) and decodes it; PSNR
and MS-SSIM are measured on the decoded 8-bit image. JPEG and WebP code the same image at a quality sweep, and
their PSNR is interpolated at the run's bpp for that image (classical.py). The rate-distortion curve holds every
λ: this run and, with `--compare`, other compression runs (a run folder, or a folder of run folders), all scored on
the same images; BD-rate (metrics/bd_rate.py) compares that curve with JPEG's and WebP's mean curves.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from pixelforge.data.images import list_images, load_rgb, read_each
from pixelforge.data.sources import split_folder
from pixelforge.deploy.runtime.learned_codec import MULTIPLE, compress_pixels, decompress_bytes
from pixelforge.errors import PixelforgeError
from pixelforge.metrics.bd_rate import bd_rate_or_reason
from pixelforge.runs.folder import data_key, evaluation_dir, require_run, write_json
from pixelforge.runs.result import EvalResult
from pixelforge.tasks.compress.classical import QUALITIES, sweep, value_at_bpp
from pixelforge.tasks.compress.data import split_images
from pixelforge.metrics.image_quality import ms_ssim_or_none, psnr
from pixelforge.tasks.compress.refine import make_refiner
from pixelforge.tasks.compress.tables import load_trained, torch_transforms

log = logging.getLogger("pixelforge")


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def estimated_bpp(model, pixels: np.ndarray, kind: str) -> float:
    """The entropy model's rate of the rounded latents (eval mode), over the image's own pixels."""
    step = MULTIPLE[kind]
    x = np.pad(pixels, ((0, -pixels.shape[0] % step), (0, -pixels.shape[1] % step), (0, 0)), mode="edge")
    with torch.no_grad():
        out = model(torch.from_numpy(x.transpose(2, 0, 1).astype(np.float32) / 255.0)[None])
    bits = sum(float(-torch.log2(lik).sum()) for lik in out["likelihoods"].values())
    return bits / (pixels.shape[0] * pixels.shape[1])


SCORE_KEYS = ("bpp", "psnr", "ms_ssim", "bpp_estimated", "encode_cpu_s", "decode_cpu_s")  # a run's means


def score_run(run_dir, images: list[np.ndarray], keep_decoded: bool = False, refine: int = 0,
              refine_lr: float | None = None) -> dict:
    """One run's mean bpp (file), PSNR, MS-SSIM, estimated bpp and encode/decode CPU seconds on `images`, and its
    per-image rows; `refine` > 0 refines each image's latents for that many steps before coding (refine.py)."""
    run, cfg, model, codec = load_trained(run_dir)
    transforms = torch_transforms(model)
    refiner = make_refiner(model, cfg.lambda_, refine, refine_lr)
    rows = []
    for pixels in images:
        started = time.process_time()
        data = compress_pixels(pixels, codec, transforms, refine=refiner)
        encoded = time.process_time()
        decoded = decompress_bytes(data, codec, transforms)
        decode_cpu = time.process_time() - encoded
        # The estimate of the latents actually coded: the refiner's kept ones, else the encoder's.
        estimate = refiner.records[-1]["bpp"] if refiner else estimated_bpp(model, pixels, cfg.model)
        rows.append({"bytes": len(data), "bpp": 8 * len(data) / (pixels.shape[0] * pixels.shape[1]),
                     "psnr": psnr(pixels, decoded), "ms_ssim": ms_ssim_or_none(pixels, decoded),
                     "bpp_estimated": estimate, "encode_cpu_s": encoded - started, "decode_cpu_s": decode_cpu,
                     **({"decoded": decoded} if keep_decoded else {})})
    return {"run": str(run), "model": cfg.model, "lambda": cfg.lambda_, "refine_steps": refine, "rows": rows,
            **{k: _mean(r[k] for r in rows) for k in SCORE_KEYS}}


def compare_runs(compare: Path | None, own: Path) -> list[Path]:
    """The compression runs named by `--compare`: one run folder, or every run folder directly inside a folder."""
    if compare is None:
        return []
    compare = Path(compare)
    candidates = [compare] if (compare / "config.yaml").is_file() else sorted(
        p for p in compare.iterdir() if (p / "config.yaml").is_file()) if compare.is_dir() else []
    if not candidates:
        raise PixelforgeError(f"{compare}: --compare takes a compression run folder or a folder of them")
    from pixelforge.runs.files import run_task_name

    # Runs of other tasks were dropped without a word, so a mistyped --compare gave a one-point curve.
    ours = run_task_name(own)
    same_task = [p for p in candidates if run_task_name(p) == ours]
    if not same_task:
        found = sorted({run_task_name(p) for p in candidates})
        raise PixelforgeError(f"{compare}: holds {' and '.join(found)} run(s), no {ours} run; --compare takes a "
                              f"compression run folder or a folder of them")
    return [p for p in same_task if p.resolve() != own.resolve()]


def evaluation_images(run: Path, data: str | None, split: str | None,
                      include_train: bool = False) -> tuple[list[Path], str, str, int | None]:
    """(the images to score, their name for RUN/eval-NAME, the split scored (`all`: every image of `data`), how
    many of the run's training images were left out).

    The run's own data: its `split` (default test where its folder has test/, else val). `data`: every image, or
    with split folders its `split` (default test, else val, else train); the run's training images are left out
    (tasks/common/held_out.py) unless `include_train`."""
    from pixelforge.tasks.common.held_out import leave_out_training_images
    from pixelforge.tasks.config import load_config

    cfg = load_config(require_run(run) / "config.yaml")
    if data:
        files, name, label = data_images(Path(data), split)
    else:
        splits = split_images(cfg.data, cfg.val_fraction, cfg.seed)
        name = label = split or ("test" if splits["test"] else "val")
        if name not in splits:
            raise PixelforgeError(f"--split {name}: a compression run has train, val and (with a test/ folder) test "
                                  f"splits (give --data for other images)")
        files = splits[name]
        if not files:
            raise PixelforgeError(f"{cfg.data}: no images in split {name!r} (a test split needs a test/ folder)")
    files, excluded = leave_out_training_images(
        files, lambda path: path, lambda: split_images(cfg.data, cfg.val_fraction, cfg.seed)["train"],
        data or None, label, include_train)
    return files, name, label, excluded


def data_images(data: Path, split: str | None) -> tuple[list[Path], str, str]:
    """`--data`'s images: (files, the evaluation's name, the split scored: `all` without split folders)."""
    if not data.exists():  # else a warning about one unreadable "image" came before the error
        raise PixelforgeError(f"{data}: no such file or folder; give a folder of photos or one photo")
    if not data.is_dir():
        return [data], data.name, "all"
    files = list_images(data)
    given = {path: split_folder(path, data) for path in files}
    if not any(given.values()):
        if split:
            raise PixelforgeError(f"{data}: no train/, val/ or test/ folders, so no split {split!r}; leave --split out "
                                  f"to score every image")
        return files, data.name, "all"
    present = {name for name in given.values() if name}
    name = split or next(name for name in ("test", "val", "train") if name in present)
    chosen = [path for path in files if given[path] == name]
    if not chosen:
        raise PixelforgeError(f"{data}: no images in split {name!r}")
    return chosen, f"{data.name}-{name}", name


CODEC_NAMES = {"jpeg": "JPEG", "webp": "WebP"}
CURVE_KEYS = ("run", "model", "lambda", "refine_steps", *SCORE_KEYS)


def against_classical(ours: dict, curve: list[dict], classical: dict, means: dict) -> dict:
    """The run's mean scores, the codecs' at its bpp (per image, interpolated) and the curve's BD-rates."""
    metrics = {k: ours[k] for k in SCORE_KEYS}
    for codec, sweeps in classical.items():
        for key in ("psnr", "ms_ssim"):
            matched = [value_at_bpp(rows, r["bpp"], key) for rows, r in zip(sweeps, ours["rows"])]
            metrics[f"{codec}_{key}_at_bpp"] = _mean(v for v, _ in matched)
        metrics[f"{codec}_inside_sweep"] = all(inside for _, inside in
                                               (value_at_bpp(rows, r["bpp"]) for rows, r in zip(sweeps, ours["rows"])))
    for codec, rows in means.items():
        # The reason beside a None: "n/a" alone left a user guessing whether the evaluation had failed.
        metrics[f"bd_rate_vs_{codec}"], metrics[f"bd_rate_vs_{codec}_na_reason"] = bd_rate_or_reason(
            [r["bpp"] for r in rows], [r["psnr"] for r in rows], [s["bpp"] for s in curve], [s["psnr"] for s in curve],
            (f"{CODEC_NAMES.get(codec, codec)}'s curve", "this run" if len(curve) == 1 else "the runs' curve"))
    metrics["curve"] = [{k: s[k] for k in CURVE_KEYS} for s in curve]
    return metrics


def evaluate_compression(run_dir, data: str | None = None, split: str | None = None, out: Path | None = None,
                         compare: Path | None = None, refine: int = 0, refine_lr: float | None = None,
                         include_train: bool = False) -> EvalResult:
    """Score the run (and `compare`'s runs) with real files against JPEG/WebP.

    With `data`, this run's training images are left out (counted in `excluded_training_images`) unless
    `include_train`; the images so chosen are the ones every run of `compare` is scored on too.

    `refine` > 0: every run of the curve refines each image's latents for that many steps (refine.py); the same
    runs without refinement are scored too, under `"unrefined"`, and drawn beside them. Figures go to
    RUN/eval-NAME (RUN/eval-NAME-refineN with refinement).
    """
    run = Path(run_dir)
    make_refiner(None, 0.0, refine, refine_lr)  # refuses --refine-lr without --refine before any work
    files, name, scored_split, excluded = evaluation_images(run, data, split, include_train)
    runs = [run, *compare_runs(compare, run)]  # before the output folder exists: a bad --compare leaves nothing
    if not files:
        raise PixelforgeError(f"{data or run}: no images to evaluate")
    unreadable: list[dict] = []
    decoded = list(read_each(files, load_rgb, unreadable))  # a broken file is skipped and named, as classify does
    for bad in unreadable:
        log.warning("skipping unreadable image: %s", bad["error"])
    if not decoded:
        raise PixelforgeError(f"no readable images to evaluate: {unreadable[0]['error']}")
    files, images = [f for f, _ in decoded], [np.asarray(image) for _, image in decoded]
    request = {"data": data_key(data), "split": name, "compare": data_key(compare), "refine": refine,
               "refine_lr": refine_lr, **({"include_train": True} if include_train else {})}
    out = evaluation_dir(out, run / (f"eval-{name}-refine{refine}" if refine else f"eval-{name}"), request)
    scored = [score_run(r, images, keep_decoded=r == run, refine=refine, refine_lr=refine_lr) for r in runs]
    classical = {codec: [sweep(p, codec) for p in images] for codec in QUALITIES}
    means = {codec: mean_curve(sweeps) for codec, sweeps in classical.items()}
    curve = sorted(scored, key=lambda s: s["bpp"])
    metrics = {"model": scored[0]["model"], "lambda": scored[0]["lambda"], "split": scored_split,
               "num_images": len(images),
               "excluded_training_images": excluded, "refine_steps": refine,
               **against_classical(scored[0], curve, classical, means)}
    drawn = curve
    if refine:
        plain = [score_run(r, images) for r in runs]
        plain_curve = sorted(plain, key=lambda s: s["bpp"])
        metrics["unrefined"] = against_classical(plain[0], plain_curve, classical, means)
        drawn = curve + plain_curve
    metrics["classical_curves"] = means
    from pixelforge.tasks.compress.figures import plot_rd_curve, write_comparison

    figures = {"rd_curve": plot_rd_curve(drawn, means, out / "rd_curve.png"),
               "comparison": write_comparison(images, files, scored[0]["rows"], classical, out / "comparison.png",
                                              label=f"ours, refined {refine}" if refine else "ours")}
    write_json(out / "metrics.json", metrics)
    return EvalResult(metrics, out, figures, [bad["error"] for bad in unreadable])


def mean_curve(sweeps: list[list[dict]]) -> list[dict]:
    """The mean bpp, PSNR and MS-SSIM over images at each quality of the sweep."""
    def mean_or_none(values):  # MS-SSIM only where every image has it (none skipped above MS_SSIM_MAX_BPP)
        return None if any(v is None for v in values) else float(np.mean(values))

    return [{"quality": rows[0]["quality"], "bpp": _mean(r["bpp"] for r in rows), "psnr": _mean(r["psnr"] for r in rows),
             "ms_ssim": mean_or_none([r["ms_ssim"] for r in rows])} for rows in zip(*sweeps)]
