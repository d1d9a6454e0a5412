"""Writing a package folder: staged next to `--out` and moved into place only when the export succeeded.

A failed export (parity refused, Ctrl-C, a crash) leaves nothing at `--out`, so a package is never half-written,
and an existing non-empty `--out` is never touched. The files' names and format are the runtime's
(`pixelforge.deploy.runtime.package`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pixelforge.deploy.runtime.package import CARD_FILE, CLASSES_FILE, MANIFEST_FILE, PREPROCESS_FILE
from pixelforge.errors import PixelforgeError
from pixelforge.formats import package_stamp
from pixelforge.runs.card_file import card_text
from pixelforge.output_names import staged_folder  # noqa: F401 (the tasks' exports take it from here)


def require_new_out(out: Path) -> None:
    """Refuse an `--out` that exists and is not an empty folder (checked before any work)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PixelforgeError(f"{out}: already exists and is not empty; packages are never overwritten, choose a new --out")


def reject_options(task: str, options: dict, format: str | None = "onnx", offers: tuple[str, ...] = (),
                   why: str | None = None) -> None:
    """One-line error for export options a task's packages cannot honour (`--int8`, `--fp16`, `--format
    torchscript`, classification's parity settings, ...): it names what the task offers instead (`offers`, option
    names as in Python), or `why` its packages are fp32 ONNX only."""
    given = sorted(k for k, v in options.items() if v is not None and v is not False)  # 0 is given
    if format not in (None, "onnx"):
        given.insert(0, f"format {format}")
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        if why:
            reason = why
        elif offers:
            reason = "it offers fp32 ONNX and " + ", ".join("--" + k.replace("_", "-") for k in offers)
        else:
            reason = "its packages are fp32 ONNX"
        raise PixelforgeError(f"export: {flags} not available for task {task!r} ({reason}); "
                              f"export without {'it' if len(given) == 1 else 'them'}")


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def write_dense_package_files(staging: Path, run_dir: Path, preprocess: dict, classes: list[str], manifest: dict,
                              opset: int, write_card=None) -> None:
    """preprocess.json, classes.json, package.json (with where it came from) and the run's model card, as a
    detection, segmentation or instance package holds them beside its model. `write_card(path)` writes the card
    for a run that has none (one trained before its task wrote cards)."""
    write_json(staging / PREPROCESS_FILE, preprocess)
    write_json(staging / CLASSES_FILE, classes)
    card = Path(run_dir) / CARD_FILE  # the run's card travels with the model (web page, /v1/model)
    if card.is_file():
        (staging / CARD_FILE).write_text(card_text(card), encoding="utf-8")
    elif write_card is not None:
        write_card(staging / CARD_FILE)
    write_json(staging / MANIFEST_FILE, {
        **package_stamp(), "format": "onnx", "models": {"fp32": "model.onnx"}, "default_precision": "fp32",
        "input_name": "image", **manifest,
        "export": {"run": Path(run_dir).resolve().name, "checkpoint": "best.ckpt", **exported_with(opset),
                   "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}})


def exported_with(opset: int) -> dict:
    """The ONNX opset and the onnxruntime the parity check ran on: a runtime too old for the opset names both."""
    import onnxruntime

    return {"opset": opset, "onnxruntime": onnxruntime.__version__}
