"""`model_card.md`: what a run is, what it was trained on, how well it works, for whom, and what it cost.

The sections follow Mitchell et al. 2019 ("Model Cards for Model Reporting"): intended use, data, training setup,
metrics with uncertainty (bootstrap intervals from `evaluate`), per-group results when the data has groups,
known limitations (written from the numbers: small test sets, weak classes, flagged group gaps, imbalance), and
compute (wall time, throughput, parameters, GFLOPs, peak memory). Every training run writes one at its end;
`write_model_card(run)` rewrites it for any run folder from what the run folder holds.
"""

from __future__ import annotations

import datetime
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

from pixelforge.engine.cpu_memory import peak_memory  # noqa: F401  (re-exported for the card's callers)
from pixelforge.data.sources import card_name
from pixelforge.runs import folder as rd
from pixelforge.runs.card_file import write_card
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.common.card import md_table




def _md_table(header: list[str], rows: list[list]) -> str:
    return "\n".join(md_table(header, rows))


def _model_size(cfg, num_classes: int) -> tuple[float, float]:
    """(parameters in millions, GFLOPs per image at img_size), from the architecture on the meta device.

    Counting traces a whole forward pass (0.3-0.6 s for Lite0 on 2 cores, at the end of every training run), so a
    timm backbone's figures are kept in `$PIXELFORGE_HOME/model-sizes.json`, keyed by the names, sizes and library
    versions they depend on (issue 20, lever L27). pixelforge's own networks are counted each time.
    """
    import torch

    from pixelforge.data.builtin import cache_root
    from pixelforge.models.catalog import model_size
    from pixelforge.models.registry import get_spec

    if get_spec(cfg.model).source != "timm":
        return model_size(cfg.model, num_classes, cfg.img_size)
    import timm  # only here: its import is ~2 s of CPU that a run of pixelforge's own network never needed

    key = f"{cfg.model}|{num_classes}|{cfg.img_size}|timm {timm.__version__}|torch {torch.__version__}"
    path = cache_root() / "model-sizes.json"
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):  # unreadable: counted again and rewritten
        known = {}
    if key not in known:
        known[key] = list(model_size(cfg.model, num_classes, cfg.img_size))
        try:
            rd.write_json(path, known)
        except OSError:  # a read-only cache costs the count next time, nothing else
            pass
    return tuple(known[key])


def _compute(run: Path, cfg, classes: list[str], summary: dict, memory: dict | None) -> dict:
    if memory is None:  # not at the end of training: reuse what training measured
        return summary.get("compute", {})
    rows = rd.read_metrics(run / "metrics.csv")
    head_speeds = [r["head_images_per_s"] for r in rows if r.get("head_images_per_s")]
    params_m, gflops = _model_size(cfg, len(classes))
    # summary.json's images_per_s: training images per second of what the user waited for, feature extraction
    # included on the cached-features path (the head alone runs 100x faster and is reported apart).
    return {"wall_seconds": round(time.time() - (run / "config.yaml").stat().st_mtime, 1),
            "training_seconds": summary.get("seconds_training"),
            "feature_extraction_seconds": summary.get("feature_extraction_seconds"),
            "images_per_s": summary.get("images_per_s"),
            "head_images_per_s": round(sum(head_speeds) / len(head_speeds), 1) if head_speeds else None,
            "params_m": round(params_m, 3), "gflops_per_image": round(gflops, 3), **memory}


def _cached_note(compute: dict) -> str:
    if compute.get("feature_extraction_seconds") is None:
        return ""
    return (f" (feature extraction, {compute['feature_extraction_seconds']} s, included; the head alone on cached "
            f"features: {compute.get('head_images_per_s', '?')} images/s)")


def _data_section(cfg) -> tuple[str, dict]:
    from pixelforge.data.groups import has_groups, resolve_groups
    from pixelforge.tasks.classify.task import prepare_data

    source, _ = prepare_data(cfg)
    splits = [s for s in ("train", "val", "test") if source.split(s)]
    counts = {s: Counter(x.label for x in source.split(s)) for s in splits}
    rows = [[c] + [counts[s].get(c, 0) for s in splits] for c in source.classes]
    rows.append(["**total**"] + [sum(counts[s].values()) for s in splits])
    text = [f"Source: `{card_name(source.origin)}`.", "", "Images per class and split:", "",
            _md_table(["class"] + splits, rows)]
    group_counts: dict = {}
    if has_groups(source.samples, cfg.groups):
        by_split = defaultdict(Counter)
        for sample, group in zip(source.samples, resolve_groups(source.samples, cfg.groups, cfg.data)):
            by_split[sample.split][group] += 1
        names = sorted({g for c in by_split.values() for g in c})
        text += ["", f"Images per group (`{cfg.groups}`) and split:", "",
                 _md_table(["group"] + splits, [[g] + [by_split[s].get(g, 0) for s in splits] for g in names])]
        group_counts = {s: dict(by_split[s]) for s in splits}
    else:
        text += ["", f"No group attribute (`{cfg.groups}`) in the data, so per-group results are not available."]
    return "\n".join(text), {"classes": {s: dict(counts[s]) for s in splits}, "groups": group_counts}


def _latest_metrics(run: Path) -> dict | None:
    for name in ("eval-test", "eval-val"):
        if (run / name / "metrics.json").is_file():
            return rd.read_json(run / name / "metrics.json")
    return None


def _metrics_section(m: dict | None) -> str:
    if m is None:
        return "Not evaluated yet: run `pixelforge evaluate RUN`."
    ci = m.get("confidence_intervals", {})
    span = lambda key: f"{ci[key][0]:.3f} to {ci[key][1]:.3f}" if key in ci else "n/a"  # noqa: E731
    rows = [["accuracy", f"{m['accuracy']:.4f}", span("accuracy")], ["macro F1", f"{m['macro_f1']:.4f}", span("macro_f1")],
            ["expected calibration error", f"{m['ece']:.4f}", ""]]
    if m.get("top5_accuracy") is not None:
        rows.insert(1, ["top-5 accuracy", f"{m['top5_accuracy']:.4f}", ""])
    per_class = [[c, f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", r["support"]]
                 for c, r in m["per_class"].items()]
    text = [f"On the **{m['split']}** split ({m['num_images']} images), best checkpoint; intervals are 95% bootstrap "
            f"percentile intervals ({ci.get('resamples', 0)} resamples).", "",
            _md_table(["metric", "value", "95% interval"], rows), "",
            _md_table(["class", "precision", "recall", "F1", "support"], per_class)]
    f = m.get("faithfulness")
    if f:
        text += ["", f"Grad-CAM faithfulness on {f['images']} evaluation images (RISE deletion/insertion, {f['steps']} "
                 f"steps): deletion {f['deletion_auc']:.3f} (random block order {f['random_deletion_auc']:.3f}; lower is "
                 f"better), insertion {f['insertion_auc']:.3f} (random {f['random_insertion_auc']:.3f}; higher is better)."]
    return "\n".join(text)


def _fairness_section(m: dict | None) -> str:
    from pixelforge.metrics.fairness import groups_table_rows

    if not m or "groups" not in m:
        return ("Not measured: the evaluation data had no group attribute. Add a `group` column to a CSV (or pass "
                "`--groups`) and run `pixelforge evaluate RUN --groups group`.")
    groups, s = m["groups"], m["groups"]["summary"]
    header, rows = groups_table_rows(groups)
    text = [f"Groups by `{s['column']}` on the {m['split']} split.", "", _md_table(header, rows), "",
            f"Largest accuracy gap {groups['largest_accuracy_gap']:.3f}; demographic parity difference "
            f"{s['demographic_parity_difference']:.3f}; equalized odds difference {s['equalized_odds_difference']:.3f} "
            "(fairlearn, one-vs-rest, worst class)."]
    text += [""] + [f"- **flag:** {flag}" for flag in s["flags"]] if s["flags"] else ["", f"No gap above {s['threshold']}."]
    return "\n".join(text)


def _limitations(cfg, m: dict | None, counts: dict) -> list[str]:
    notes = []
    train = counts["classes"].get("train", {})
    if train and max(train.values()) > 3 * max(min(train.values()), 1):
        notes.append(f"Training classes are imbalanced ({max(train.values())} vs {min(train.values())} images); "
                     "consider `--balance classes`." if cfg.balance == "none" else "Training classes are imbalanced; "
                     f"trained with `--balance {cfg.balance}`.")
    if m:
        if m["split"] == "val":
            notes.append("Evaluated on the validation split, which also chose the best epoch: expect slightly lower "
                         "accuracy on new data. Hold out a test split (`--test-fraction`) for an unbiased number.")
        ci = m.get("confidence_intervals", {}).get("accuracy")
        if ci and ci[1] - ci[0] > 0.05:
            notes.append(f"Only {m['num_images']} evaluation images: accuracy is known to within {ci[0]:.3f}-{ci[1]:.3f}.")
        weak = [c for c, r in m["per_class"].items() if r["recall"] < m["accuracy"] - 0.1]
        if weak:
            notes.append(f"Weaker on class(es) {', '.join(weak)} (recall well below overall accuracy).")
        notes += [f"Group result: {flag}." for flag in m.get("groups", {}).get("summary", {}).get("flags", [])]
        f = m.get("faithfulness")
        if f and f["deletion_auc"] >= f["random_deletion_auc"]:
            notes.append("Grad-CAM heat maps were not more faithful than a random block order here; treat them with care.")
    notes.append(f"Trained and evaluated at {cfg.img_size} px on images like `{card_name(cfg.data)}`; other cameras, "
                 "lighting, framing or populations may perform worse. The ImageNet-pretrained backbone carries that data's biases."
                 if cfg.weights == "imagenet" else f"Trained at {cfg.img_size} px on images "
                 f"like `{card_name(cfg.data)}`; other cameras, lighting, framing or populations may perform worse.")
    return notes


MEASURED_SECTIONS = ("Data", "Training setup", "Metrics", "Fairness across groups", "Compute")


def write_model_card(run: str | Path, peak_memory: dict | None = None) -> Path:
    """Write RUN/model_card.md. `peak_memory` (from `peak_memory()`) marks a call at the end of training: the
    compute numbers are then measured now and kept in summary.json; otherwise they are read from there.

    Example:
        >>> write_model_card("runs/hymenoptera")  # doctest: +SKIP
        PosixPath('runs/hymenoptera/model_card.md')
    """
    from pixelforge.tasks.config import load_config

    run = rd.require_run(run)
    cfg, classes = load_config(run / "config.yaml"), rd.read_json(run / "classes.json")
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    compute = _compute(run, cfg, classes, summary, peak_memory)
    if peak_memory is not None:
        rd.write_json(run / "summary.json", {**summary, "compute": compute})
    try:
        data_text, counts = _data_section(cfg)
    except PixelforgeError as exc:  # the training data moved since: say so rather than fail
        data_text, counts = f"Training data not readable now ({exc}).", {"classes": {}, "groups": {}}
    m = _latest_metrics(run)
    weights = "trained from scratch" if cfg.weights == "none" else f"{cfg.weights} weights"
    setup = [["backbone", f"{cfg.model} ({weights})"], ["strategy", cfg.strategy],
             ["epochs", f"{summary.get('epochs_run', '?')} run, best at {summary.get('best_epoch', '?')}"],
             ["image size", f"{cfg.img_size} px"], ["batch size", cfg.batch_size],
             ["optimizer", f"{cfg.optimizer}, lr {summary.get('lr', cfg.lr)}, {cfg.schedule} schedule"],
             ["augmentation", cfg.augment], ["balance", cfg.balance], ["label smoothing", cfg.label_smoothing],
             ["precision", summary.get("precision", cfg.precision)], ["seed", cfg.seed], ["training path", summary.get("path", "?")]]
    memory = compute.get("gpu_peak_allocated_mb")
    cost = [["wall time", f"{compute.get('wall_seconds', '?')} s (run start to this card)"],
            ["training time (epochs)", f"{compute.get('training_seconds', '?')} s"],
            ["throughput", f"{compute.get('images_per_s', '?')} training images/s" + _cached_note(compute)],
            ["parameters", f"{compute.get('params_m', '?')} M"],
            ["GFLOPs per image", f"{compute.get('gflops_per_image', '?')} at {cfg.img_size} px"],
            ["peak memory", f"{compute.get('process_peak_rss_mb', '?')} MB resident"
             + (f", {memory} MB GPU" if memory else "")]]
    card = [
        f"# Model card: {run.name}", "",
        f"Image classifier over {len(classes)} classes ({', '.join(classes)}), written by pixelforge on "
        f"{datetime.date.today().isoformat()}. Numbers below are measured; edit the prose sections to fit your use.", "",
        "## Intended use", "",
        f"- Sorting images like those in `{card_name(cfg.data)}` into: {', '.join(classes)}.",
        "- Out of scope: images unlike the training data, classes not listed, and decisions about people without "
        "human review.", "",
        "## Data", "", data_text, "",
        "## Training setup", "", _md_table(["setting", "value"], setup), "",
        "## Metrics", "", _metrics_section(m), "",
        "## Fairness across groups", "", _fairness_section(m), "",
        "## Known limitations", "", *[f"- {note}" for note in _limitations(cfg, m, counts)], "",
        "## Compute", "", _md_table(["measure", "value"], cost), "",
    ]
    # The numbers are refreshed after each evaluation; the prose (title, intended use, limitations) is the user's
    # to edit and survives (runs/card_file.py).
    return write_card(run / "model_card.md", "\n".join(card), MEASURED_SECTIONS)
