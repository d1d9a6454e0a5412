"""Does the model work equally well for every group? Per-group metrics, gaps, parity differences, bootstrap CIs.

For each group (a CSV column or a folder mapping, see `pixelforge.data.groups`): support, accuracy with a 95%
bootstrap interval, macro recall, macro false-positive rate (one-vs-rest, averaged over classes), expected
calibration error, and how many training images the group had. Across groups: the largest gap of each metric,
and the demographic-parity and equalized-odds differences (rates from fairlearn's MetricFrame), computed
one-vs-rest for every class and reported for the worst class (fairlearn's definitions are for binary decisions).
Gaps above `threshold` are flagged; a gap between small groups is flagged with its intervals, as it may be noise.

The `groups` object of `evaluate`'s metrics holds one entry per group value plus `largest_accuracy_gap` and a
`summary` with everything across groups.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from pixelforge.errors import PixelforgeError

RESERVED = ("largest_accuracy_gap", "summary")
GAP_METRICS = ("accuracy", "recall", "false_positive_rate", "calibration_error")
SMALL_GROUP = 30  # below this many images a group's accuracy interval is wide: say so


def bootstrap_intervals(targets: np.ndarray, preds: np.ndarray, num_classes: int, n_boot: int = 1000,
                        level: float = 0.95, seed: int = 0) -> dict:
    """Percentile bootstrap intervals of accuracy and macro F1 (resampling images with replacement).

    Example:
        >>> y = np.array([0, 0, 1, 1]); p = np.array([0, 1, 1, 1])
        >>> lo, hi = bootstrap_intervals(y, p, 2)["accuracy"]
        >>> 0 <= lo <= 0.75 <= hi <= 1
        True
    """
    n = len(targets)
    if n == 0:
        return {"accuracy": [0.0, 0.0], "macro_f1": [0.0, 0.0], "level": level, "resamples": 0}
    rng = np.random.default_rng(seed)
    onehot_true = np.eye(num_classes)[targets]
    onehot_pred = np.eye(num_classes)[preds]
    hits = onehot_true * onehot_pred
    accuracy, macro_f1 = [], []
    for start in range(0, n_boot, 100):  # 100 resamples at a time bounds the memory of the count matrix
        counts = rng.multinomial(n, np.full(n, 1 / n), size=min(100, n_boot - start)).astype(np.float64)
        tp, n_true, n_pred = counts @ hits, counts @ onehot_true, counts @ onehot_pred
        accuracy.append(tp.sum(1) / n)
        denominator = n_true + n_pred
        macro_f1.append(np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0).mean(1))
    tails = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    interval = lambda values: [round(float(v), 4) for v in np.percentile(np.concatenate(values), tails)]  # noqa: E731
    return {"accuracy": interval(accuracy), "macro_f1": interval(macro_f1), "level": level, "resamples": n_boot}


def _macro_recall(y_true, y_pred) -> float:
    from sklearn.metrics import recall_score

    return float(recall_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0))


def _macro_fpr(y_true, y_pred, num_classes: int) -> float:
    rates = []
    for k in range(num_classes):
        negatives = y_true != k
        if negatives.any():
            rates.append(float((y_pred[negatives] == k).mean()))
    return float(np.mean(rates)) if rates else 0.0


def _per_group_table(probs: torch.Tensor, y: np.ndarray, p: np.ndarray, groups: np.ndarray, num_classes: int) -> dict:
    from fairlearn.metrics import MetricFrame, count
    from sklearn.metrics import accuracy_score
    from torchmetrics.functional.classification import multiclass_calibration_error

    frame = MetricFrame(
        metrics={"support": count, "accuracy": accuracy_score, "recall": _macro_recall,
                 "false_positive_rate": lambda t, q: _macro_fpr(np.asarray(t), np.asarray(q), num_classes)},
        y_true=y, y_pred=p, sensitive_features=groups)
    table = {}
    for group, row in frame.by_group.iterrows():
        mask = groups == group
        ece = multiclass_calibration_error(probs[torch.from_numpy(mask)], torch.from_numpy(y[mask]),
                                           num_classes=num_classes, n_bins=15)
        ci = bootstrap_intervals(y[mask], p[mask], num_classes, n_boot=500)["accuracy"]
        table[str(group)] = {"support": int(row["support"]), "accuracy": round(float(row["accuracy"]), 4),
                             "accuracy_ci": ci, "recall": round(float(row["recall"]), 4),
                             "false_positive_rate": round(float(row["false_positive_rate"]), 4),
                             "calibration_error": round(float(ece), 4)}
    return table


def _parity(y: np.ndarray, p: np.ndarray, groups: np.ndarray, classes: list[str]) -> dict:
    """Demographic-parity and equalized-odds differences, one-vs-rest per class, and the worst class.

    The rates come from fairlearn's MetricFrame; a group with no positives (or no negatives) of a class has no
    true-positive (false-positive) rate, so it is left out of that difference instead of counting as 0, which
    fairlearn's `equalized_odds_difference` would do (a group without circles is not 100% unfair to circles).
    """
    import warnings

    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate

    spread = lambda values: float(max(values) - min(values)) if len(values) > 1 else 0.0  # noqa: E731
    per_class = {}
    for k, name in enumerate(classes):
        truth, chosen = (y == k).astype(int), (p == k).astype(int)
        if not truth.any():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined rates of groups that are then left out
            rates = MetricFrame(metrics={"selection": selection_rate, "tpr": true_positive_rate,
                                         "fpr": false_positive_rate},
                                y_true=truth, y_pred=chosen, sensitive_features=groups).by_group
        positives = {g: truth[groups == g].any() for g in rates.index}
        negatives = {g: (1 - truth[groups == g]).any() for g in rates.index}
        tpr = [rates.loc[g, "tpr"] for g in rates.index if positives[g]]
        fpr = [rates.loc[g, "fpr"] for g in rates.index if negatives[g]]
        per_class[name] = {"demographic_parity_difference": round(spread(list(rates["selection"])), 4),
                           "equalized_odds_difference": round(max(spread(tpr), spread(fpr)), 4),
                           # how much the groups' true shares of the class differ: parity is not expected beyond it
                           "base_rate_difference": round(spread([truth[groups == g].mean() for g in rates.index]), 4)}
    result = {"per_class": per_class}
    for key in ("demographic_parity_difference", "equalized_odds_difference"):
        worst = max(per_class, key=lambda c: per_class[c][key]) if per_class else None
        result[key] = per_class[worst][key] if worst else 0.0
        result[f"{key}_class"] = worst
    return result


def group_metrics(probs: torch.Tensor, targets: torch.Tensor, groups: list[str], classes: list[str],
                  train_groups: list[str] | None = None, column: str = "group", threshold: float = 0.1) -> dict:
    """The `groups` object: one entry per group, `largest_accuracy_gap`, and a `summary` across groups.

    Example:
        >>> probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4]])
        >>> out = group_metrics(probs, torch.tensor([0, 1, 1, 0]), ["a", "a", "b", "b"], ["no", "yes"])
        >>> out["a"]["accuracy"], out["b"]["accuracy"], out["largest_accuracy_gap"]
        (1.0, 0.5, 0.5)
    """
    clash = sorted(set(groups) & set(RESERVED))
    if clash:
        raise PixelforgeError(f"group value {clash[0]!r} in column {column!r} is a reserved name; rename that group")
    y, p, g = targets.numpy(), probs.argmax(1).numpy(), np.asarray(groups, dtype=object)
    table = _per_group_table(probs.float(), y, p, g, len(classes))
    train_counts = Counter(train_groups) if train_groups is not None else None
    for name, row in table.items():
        if train_counts is not None:
            row["train_images"] = train_counts.get(name, 0)
            row["train_share"] = round(train_counts.get(name, 0) / max(len(train_groups), 1), 4)
    gaps = {}
    for metric in GAP_METRICS:
        values = {name: row[metric] for name, row in table.items()}
        high, low = max(values, key=values.get), min(values, key=values.get)
        gaps[metric] = {"gap": round(values[high] - values[low], 4), "highest": high, "lowest": low}
    summary = {"column": column, "groups": sorted(table), "threshold": threshold, "gaps": gaps,
               **_parity(y, p, g, classes), "training_representation_known": train_counts is not None}
    summary["flags"] = _flags(table, summary, threshold)
    return {**table, "largest_accuracy_gap": gaps["accuracy"]["gap"], "summary": summary}


def _flags(table: dict, summary: dict, threshold: float) -> list[str]:
    flags = []
    if len(table) == 1:  # every gap is 0 then, which reads as "fair" when nothing was compared
        flags.append(f"only one group ({next(iter(table))!r}) in column {summary['column']!r} among the scored images: "
                     f"there is no gap to measure; check the column, or score a split that holds other groups")
    for metric, gap in summary["gaps"].items():
        if gap["gap"] > threshold:
            hi, lo = table[gap["highest"]], table[gap["lowest"]]
            note = ""
            if metric == "accuracy" and min(hi["support"], lo["support"]) < SMALL_GROUP:
                note = (f" (small groups: 95% CIs {hi['accuracy_ci']} and {lo['accuracy_ci']}; the gap may be noise)")
            flags.append(f"{metric.replace('_', ' ')} gap {gap['gap']:.3f} between {gap['highest']!r} "
                         f"({hi[metric]:.3f}) and {gap['lowest']!r} ({lo[metric]:.3f}) exceeds {threshold}{note}")
    for key in ("demographic_parity_difference", "equalized_odds_difference"):
        if summary[key] > threshold:
            name = summary[key + "_class"]
            note = ""
            if key == "demographic_parity_difference":
                note = f"; the groups' true shares of it differ by {summary['per_class'][name]['base_rate_difference']:.3f}"
            flags.append(f"{key.replace('_', ' ')} {summary[key]:.3f} (class {name!r}{note}) exceeds {threshold}")
    rare = [name for name, row in table.items() if row.get("train_share") is not None and row["train_share"] < 0.1]
    for name in rare:
        flags.append(f"group {name!r} is {table[name]['train_share']:.1%} of the training images: under-represented")
    return flags


def per_group(groups: dict) -> dict:
    """Only the per-group entries of a `groups` object."""
    return {k: v for k, v in groups.items() if k not in RESERVED}


def before_after(before: dict, after: dict) -> dict:
    """Per-group accuracy and the summary gaps of two `groups` objects (a baseline run, then a mitigated one)."""
    rows = {name: {"accuracy_before": per_group(before).get(name, {}).get("accuracy"), "accuracy_after": row["accuracy"]}
            for name, row in per_group(after).items()}
    keys = ("demographic_parity_difference", "equalized_odds_difference")
    overall = {"largest_accuracy_gap": [before["largest_accuracy_gap"], after["largest_accuracy_gap"]],
               **{k: [before["summary"][k], after["summary"][k]] for k in keys}}
    return {"groups": rows, "overall": overall}


def format_groups(groups: dict) -> str:
    """Plain-text table for the terminal."""
    s = groups["summary"]
    lines = [f"groups by {s['column']!r}:"]
    for name, row in per_group(groups).items():
        train = f"  train {row['train_images']} ({row['train_share']:.0%})" if "train_images" in row else ""
        ci = "[{:.3f}, {:.3f}]".format(*row["accuracy_ci"])
        lines.append(f"  {name:16s} accuracy {row['accuracy']:.3f} {ci}  recall {row['recall']:.3f}  "
                     f"FPR {row['false_positive_rate']:.3f}  ECE {row['calibration_error']:.3f}  "
                     f"support {row['support']}{train}")
    lines.append(f"  largest accuracy gap {groups['largest_accuracy_gap']:.3f}; demographic parity difference "
                 f"{s['demographic_parity_difference']:.3f}; equalized odds difference {s['equalized_odds_difference']:.3f}")
    if "before_after" in s:
        ba = s["before_after"]
        lines.append(f"  before ({ba['baseline']}) -> after:")
        for name, row in ba["groups"].items():
            before = "n/a" if row["accuracy_before"] is None else f"{row['accuracy_before']:.3f}"
            lines.append(f"    {name:14s} accuracy {before} -> {row['accuracy_after']:.3f}")
        for key, (b, a) in ba["overall"].items():
            lines.append(f"    {key.replace('_', ' ')} {b:.3f} -> {a:.3f}")
    lines += [f"  FLAG: {flag}" for flag in s["flags"]]
    return "\n".join(lines)


def groups_table_rows(groups: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-group table, shared by the HTML report and the markdown model card."""
    header = ["group", "support", "accuracy", "95% CI", "recall", "FPR", "ECE", "train images"]
    rows = []
    for name, row in per_group(groups).items():
        train = f"{row['train_images']} ({row['train_share']:.0%})" if "train_images" in row else "unknown"
        rows.append([name, str(row["support"]), f"{row['accuracy']:.3f}",
                     f"{row['accuracy_ci'][0]:.3f}-{row['accuracy_ci'][1]:.3f}", f"{row['recall']:.3f}",
                     f"{row['false_positive_rate']:.3f}", f"{row['calibration_error']:.3f}", train])
    return header, rows


def groups_html(groups: dict) -> str:
    """The report's fairness section: the per-group table, the differences, and the flags in red."""
    import html

    s = groups["summary"]
    header, rows = groups_table_rows(groups)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    parts = [f"<h2>Fairness across groups ({html.escape(s['column'])})</h2><table><tr>{head}</tr>{body}</table>",
             f"<p>Largest accuracy gap <b>{groups['largest_accuracy_gap']:.3f}</b>; demographic parity difference "
             f"{s['demographic_parity_difference']:.3f}; equalized odds difference {s['equalized_odds_difference']:.3f} "
             "(fairlearn, one-vs-rest, worst class).</p>"]
    if s["flags"]:
        parts.append("<ul>" + "".join(f"<li style='color:crimson'>{html.escape(f)}</li>" for f in s["flags"]) + "</ul>")
    else:
        parts.append(f"<p>No gap above {s['threshold']}.</p>")
    return "".join(parts)
