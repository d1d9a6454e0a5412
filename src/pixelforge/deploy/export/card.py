"""The package's model_card.md: what the model is, what it was trained and measured on, how it was exported.

Follows the sections of Mitchell et al., "Model Cards for Model Reporting" (2019), kept to what pixelforge knows:
model details, data, metrics, intended use, limitations, export settings and parity. A run folder may already hold
its own, fuller model_card.md (written by the evaluation report); then that card is kept whole and only the export
settings and the parity report are added to it.
"""

from __future__ import annotations

import json
from pathlib import Path

from pixelforge.deploy.export.parity import describe
from pixelforge.data.sources import card_name
from pixelforge.runs.card_file import card_text


def _eval_lines(run_dir: Path) -> list[str]:
    lines = []
    for metrics_file in sorted(run_dir.glob("eval-*/metrics.json")):
        m = json.loads(metrics_file.read_text())
        line = (f"- `{m.get('split', metrics_file.parent.name)}` split: {m.get('num_images')} images, accuracy "
                f"{100 * m['accuracy']:.2f}%, macro F1 {m.get('macro_f1', float('nan')):.3f}")
        if m.get("ece") is not None:
            line += f", ECE {m['ece']:.3f}"
        lines.append(line)
    return lines


def write_model_card(path: Path, run_dir: Path, config, classes: list[str], manifest: dict, parity: dict) -> None:
    """Write `path`: the run's own card (or one generated from its config, summary and evaluations) plus the
    export's settings and parity report."""
    run_card = run_dir / "model_card.md"
    about = card_text(run_card).strip().splitlines() if run_card.is_file() else _about(run_dir, config, classes, manifest)
    lines = [*about, "", "## Export settings",
             f"- Format: {manifest['format']}; files: " + ", ".join(f"{k} `{v}`" for k, v in manifest["models"].items())
             + f"; runtime default: {manifest['default_precision']}.",
             *[f"- {key}: {value}" for key, value in manifest["export"].items()], "",
             "## Parity with PyTorch",
             f"- Measured on {parity['images']} `{parity['split']}` images, each side with its own preprocessing.",
             *[f"- {describe(name, parity[name])}" for name in ("fp32", "int8", "fp16") if name in parity]]
    path.write_text("\n".join(lines) + "\n")


def _about(run_dir: Path, config, classes: list[str], manifest: dict) -> list[str]:
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    pre = manifest["preprocess"]
    return [
        f"# Model card: {manifest['name']}", "",
        "## Model details",
        f"- Image classifier, backbone `{config.model}` (weights: {config.weights}, fine-tuning strategy: {config.strategy}), "
        f"{len(classes)} classes: {', '.join(classes)}.",
        f"- Input: {pre['img_size']}x{pre['img_size']} RGB, shorter side resized to {pre['resize_short_side']} (bicubic) "
        f"then centre-cropped, scaled to [0, 1], normalized with mean {pre['mean']} and std {pre['std']}.",
        "- Output: one logit per class; softmax gives the scores.",
        f"- Trained with pixelforge {manifest.get('pixelforge_version')} for {summary.get('epochs_run', config.epochs)} epochs "
        f"(run folder `{run_dir.name}`).", "",
        "## Training data",
        f"- Source: `{card_name(config.data)}`; {summary.get('train_images', '?')} training and "
        f"{summary.get('val_images', '?')} "
        f"validation images (validation share {config.val_fraction}, seed {config.seed} when the data had no splits).", "",
        "## Metrics",
        f"- Best validation accuracy during training: {100 * summary['best_val_accuracy']:.2f}%." if "best_val_accuracy" in summary
        else "- No training summary found.",
        *_eval_lines(run_dir), "",
        "## Intended use",
        f"- Sorting images into the classes above, for images like the training data ({card_name(config.data)}).",
        "- Scores are softmax probabilities; check the calibration (ECE) before treating them as probabilities.", "",
        "## Limitations",
        "- The model knows only the classes above: any image gets one of them, even if it shows none.",
        "- Accuracy was measured on a validation split of the same source as the training data; photos from other "
        "cameras, places or populations may score lower. Check per-class and per-group results before deploying.",
        "- Small validation sets give coarse estimates (one image is 100/N points).",
    ]
