"""`pixelforge evaluate` for a GAN run: FID and KID with the extractor in their names, at n, with the real-vs-real
floor at the same n; for conditional models the judge's conditional accuracy and class coverage; a diversity
check that warns of mode collapse.

    generated  n images of the EMA generator (classes balanced), fixed seed
    real A     n real images (all splits), the reference
    real B     n other real images, disjoint from A: fid(B, A) is the floor no generator can be expected to beat
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from pixelforge.engine.devices import on_inference_device
from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd
from pixelforge.runs.result import EvalResult

log = logging.getLogger("pixelforge")
EVAL_SEED = 2024
PER_CLASS = 100  # conditional samples per class for accuracy and coverage
COLLAPSE_SHARE = 0.5


def evaluate_gan(run_dir, data: str | None = None, out=None, n: int | None = None,
                 classifier: str | None = None) -> EvalResult:
    """Score the run's best checkpoint (its EMA generator); writes metrics.json and samples.png to `out`
    (default RUN/eval).

    Example:
        >>> evaluate_gan("runs/gan-cond-digits").metrics["fid_lite0"]  # doctest: +SKIP
    """
    from pixelforge.tasks.gan.data import disjoint_real_sets, read_source, to_uint8
    from pixelforge.tasks.gan.fid import build_extractor, extract, fid_kid, mean_pairwise_distance
    from pixelforge.tasks.gan.run import load_gan_run
    from pixelforge.tasks.gan.setup import reference_features
    from pixelforge.tasks.gan.task import balanced_labels, generate

    run = load_gan_run(run_dir)
    cfg = run.config
    # The real images FID compares with need no classes; the judge (below) learns the run's own classes from the
    # run's own data, whatever --data says.
    source = read_source(data or cfg.data)
    extractor = build_extractor(cfg.fid_weights)
    name = extractor.name
    # The run's own data: leave out the files its training found unreadable (a data set of the user's may have others,
    # which the decoding below skips).
    summary = run.run_dir / "summary.json"  # absent while a run trains, or when it was stopped
    skipped = rd.read_json(summary).get("unreadable_images", []) if summary.exists() and not data else []
    set_a, set_b = disjoint_real_sets(source, n or cfg.eval_n, cfg.seed, skipped)
    # The two networks borrow the GPU for the thousands of images FID needs (engine/devices.py).
    with on_inference_device(run.generator), on_inference_device(extractor):
        real_a = reference_features(set_a, run.classes, cfg.img_size, run.channels, extractor)
        real_b = reference_features(set_b, run.classes, cfg.img_size, run.channels, extractor)
        n = min(len(real_a), len(real_b))  # an unreadable file was skipped: both sets at the same n again
        if n < 2:
            raise PixelforgeError(f"{source.origin}: {n} readable image(s) in a real set; FID needs two disjoint real "
                                  "sets of 2 or more")
        real_a, real_b = real_a[:n], real_b[:n]
        k = len(run.classes) if run.conditional else 0
        fake = generate(run.generator, n, run.latent_dim, balanced_labels(n, k), EVAL_SEED)
        fake_features = extract(extractor, to_uint8(fake))
    scores, floor = fid_kid(real_a, fake_features), fid_kid(real_a, real_b)
    diversity = mean_pairwise_distance(fake_features) / max(mean_pairwise_distance(real_a), 1e-12)
    metrics = {
        f"fid_{name}": scores["fid"], f"kid_{name}": scores["kid"], f"kid_{name}_std": scores["kid_std"],
        "fid_real_floor": floor["fid"], "kid_real_floor": floor["kid"],
        "fid_over_floor": scores["fid"] / max(floor["fid"], 1e-12), "n": n, "extractor": _extractor_text(cfg),
        "diversity": diversity,
    }
    metrics.update(_class_scores(run, read_source(cfg.data, run.conditional) if data else source, classifier))
    warnings = []
    if diversity < COLLAPSE_SHARE:
        warnings.append(f"mode collapse: the samples' feature diversity is {diversity:.0%} of the real images'")
    if metrics.get("class_coverage") is not None and metrics["class_coverage"] < 1.0:
        warnings.append(f"mode collapse: only {metrics['class_coverage']:.0%} of the classes are generated recognisably")
    for text in warnings:
        log.warning(text)
    metrics["warnings"] = warnings
    out = rd.evaluation_dir(out, run.run_dir / "eval", {"data": rd.data_key(data), "n": n, "classifier": rd.data_key(classifier)})
    figures = {"samples": _sample_grid(run, out / "samples.png")}
    rd.write_json(out / "metrics.json", metrics)
    return EvalResult(metrics, out, figures, [])


def _extractor_text(cfg) -> str:
    from pixelforge.tasks.gan.fid import LITE0_SIZE

    if cfg.fid_weights:
        return f"Inception-v3 pool features (2048) from {cfg.fid_weights}"
    return f"EfficientNet-Lite0 ImageNet pooled features (1280) at {LITE0_SIZE} px; not comparable with Inception FID"


def _class_scores(run, source, classifier) -> dict:
    """Conditional accuracy and class coverage by the judge; an unconditional model gets the share of classes the
    judge finds among its samples."""
    from pixelforge.tasks.gan.judge import own_judge, run_judge
    from pixelforge.tasks.gan.task import generate

    k = len(run.classes)
    if k < 2 and not classifier:  # one class (a plain folder of images): nothing for a judge to tell apart
        return {"classifier": None, "classifier_real_accuracy": None, "samples_per_class": None,
                "conditional_accuracy": None, "class_coverage": None}
    judge = run_judge(classifier, run.classes) if classifier else own_judge(run, source)
    total = PER_CLASS * k
    labels = torch.arange(k).repeat_interleave(PER_CLASS) if run.conditional else None
    images = generate(run.generator, total, run.latent_dim, labels, EVAL_SEED + 1)
    predicted = judge.predict(images)
    result = {"classifier": judge.describe, "classifier_real_accuracy": judge.real_accuracy,
              "samples_per_class": PER_CLASS if run.conditional else None}
    if run.conditional:
        hits = predicted == labels
        per_class = {c: float(hits[labels == i].float().mean()) for i, c in enumerate(run.classes)}
        result.update(conditional_accuracy=float(hits.float().mean()),
                      class_coverage=sum(bool(hits[labels == i].any()) for i in range(k)) / k,
                      per_class_accuracy=per_class)
    else:
        result.update(conditional_accuracy=None, class_coverage=len(set(predicted.tolist())) / k)
    return result


def _sample_grid(run, path: Path) -> Path:
    from pixelforge.tasks.gan.images import save_grid
    from pixelforge.tasks.gan.task import generate

    k = len(run.classes) if run.conditional else 0
    rows = min(k, 10) if k else 8
    labels = torch.arange(rows).repeat_interleave(10) if k else None
    return save_grid(generate(run.generator, rows * 10, run.latent_dim, labels, EVAL_SEED), path, 10)


def format_metrics(metrics: dict) -> str:
    fid = next(key for key in metrics if key.startswith("fid_") and key not in ("fid_real_floor", "fid_over_floor"))
    kid = fid.replace("fid_", "kid_")
    lines = [f"{fid} {metrics[fid]:.3f}  (real-vs-real floor {metrics['fid_real_floor']:.3f} at n={metrics['n']}, "
             f"{metrics['fid_over_floor']:.2f}x)  {kid} {metrics[kid]:.4f} (floor {metrics['kid_real_floor']:.4f})",
             f"features: {metrics['extractor']}"]
    if metrics.get("conditional_accuracy") is not None:
        lines.append(f"conditional accuracy {metrics['conditional_accuracy']:.3f}  class coverage "
                     f"{metrics['class_coverage']:.2f}  ({metrics['samples_per_class']} per class, judged by "
                     f"{metrics['classifier']}; its accuracy on real held-out images "
                     f"{_fmt(metrics['classifier_real_accuracy'])})")
    elif metrics.get("class_coverage") is not None:
        lines.append(f"class coverage {metrics['class_coverage']:.2f} (classes the judge finds among the samples)")
    lines.append(f"diversity {metrics['diversity']:.2f} of the real images'")
    lines += [f"WARNING {w}" for w in metrics.get("warnings", [])]
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"
