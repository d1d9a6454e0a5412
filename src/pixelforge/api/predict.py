"""`pixelforge.predict`: run a trained run folder, or a package from `pixelforge export`, over image files, folders
or glob patterns."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

from pixelforge.data.images import multi_frame_warnings
from pixelforge.data.sources import collect_paths
from pixelforge.errors import PixelforgeError
from pixelforge.runs.files import run_task_name
from pixelforge.runs.folder import new_file_path
from pixelforge.tasks.registry import get_task


def predict(run_dir: str | Path, paths: str | Path | list, out: str | Path | None = None, **options) -> list[dict]:
    """One result dict per image, with the keys `pixelforge predict --json` prints: every task's `path` (the input),
    `task`, and `output` (the main file written, when the row wrote one), and the task's own (classify: label,
    score, top_k; detect: image_id, annotated, detections; ...); a run's rows and its package's have the same keys. `paths`: image files, folders or glob patterns (a
    list, or one of them). `run_dir`: a run folder, or a package folder from `export` (predicted with ONNX Runtime,
    as `pixelforge predict PACKAGE` does). Task options: classify `top_k`; detect/instance `score_threshold`,
    `nms_iou`; box, mask and image tasks write their pictures and results into `out` (default RUN/predictions, or
    RUN/predictions-2... after an earlier call: never overwritten; for a package `predictions` in the current
    directory, as `pixelforge predict PACKAGE` does: a package is never written into).

    Example:
        >>> predict("runs/digits", ["digits/test/7"], top_k=3)[0]["label"]  # doctest: +SKIP
        '7'
    """
    if isinstance(paths, (str, os.PathLike)):  # one path: else its characters were taken for paths ("/" included)
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise PixelforgeError("predict: no paths given; pass a list of image files, folders or glob patterns")
    options = {key: value for key, value in options.items() if value is not None}  # None: the default, as unset
    collect_paths(paths)  # a mistyped image path is named before the run is loaded
    run = Path(run_dir)
    from pixelforge.deploy.runtime.package import is_package

    if (run / "package.json").is_file() or is_package(run):  # `pixelforge predict PACKAGE`: ONNX Runtime
        from pixelforge.deploy.export.torchscript import TORCH_LOADERS
        from pixelforge.deploy.runtime import predict_package, runtime_class

        _check_option_types(runtime_class(run).predict_files, options)
        return predict_package(run, paths, Path(out) if out else None, loaders=TORCH_LOADERS, **options)
    from pixelforge.deploy.runtime.rows import with_common_keys

    task = get_task(run_task_name(run))
    _check_option_types(type(task).predict, options)
    with multi_frame_warnings():  # an animated GIF or a TIFF stack: frame 1 is predicted, and the user is told
        rows = task.predict(run, paths, out=Path(out) if out else new_file_path(run / "predictions"), **options)
    return with_common_keys(rows, task.name, task.predict_output)


def _check_option_types(function, options: dict) -> None:
    """A number option given as something else (`top_k="3"`) is named in one line, not a TypeError deep in the
    task; the types are the ones the task's `predict` (or its package runtime's `predict_files`) declares."""
    declared = inspect.signature(function).parameters
    kinds = {"int": (int,), "float": (int, float)}
    for key, value in options.items():
        annotation = str(getattr(declared.get(key), "annotation", "")).replace(" | None", "")
        wanted = kinds.get(annotation)
        if wanted and (isinstance(value, bool) or not isinstance(value, wanted)):
            kind = "an integer" if wanted == (int,) else "a number"
            raise PixelforgeError(f"predict: {key}={value!r}: {kind} expected (--{key.replace('_', '-')})")
