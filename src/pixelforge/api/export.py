"""`pixelforge.export`: write a run's deployable package (ONNX and its pre/post-processing), checked against the
PyTorch model, whatever the run's task."""

from __future__ import annotations

from pathlib import Path

from pixelforge.runs.files import run_task_name
from pixelforge.tasks.registry import get_task


def export(run_dir: str | Path, out: str | Path, **options):
    """Export the run's best checkpoint to the package folder `out`. Task options: classify `int8`, `fp16`,
    `format`, `calibration`, ...; every task `data` and `parity_images` (see `pixelforge export --help`).

    Returns classification's `ExportResult` (`package_dir`, `parity`, `seconds`; itself a path to the package:
    `Path(result)`, `result / "model.onnx"`), and the package folder (a `Path`) for the other tasks; either way
    `pixelforge.predict(package, paths)` predicts with it (ONNX Runtime).

    Example:
        >>> export("runs/hymenoptera", "packages/hymenoptera", int8=True)  # doctest: +SKIP
    """
    return get_task(run_task_name(run_dir)).export(Path(run_dir), Path(out), **options)
