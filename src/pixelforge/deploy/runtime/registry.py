"""The runtime registry: a package's task (package.json's "task") -> the runtime class that runs it.

The one place in the deploy code that maps task names to code: `serve`, `video` and `predict` call
`load_runtime(package)` and then only the `TaskRuntime` methods. A new task's package becomes servable by adding
its runtime class here.

Example:
    >>> runtime = load_runtime("packages/seg")  # doctest: +SKIP
    >>> runtime.task, runtime.predict_images([Image.open("scan.png")])[0]["mask"].shape  # doctest: +SKIP
    ('segment', (128, 128))
"""

from __future__ import annotations

from pathlib import Path

from pixelforge.data.images import multi_frame_warnings
from pixelforge.data.sources import collect_paths
from pixelforge.deploy.runtime.base import TaskRuntime
from pixelforge.deploy.runtime.caption import CaptionRuntime
from pixelforge.deploy.runtime.classify import Runtime
from pixelforge.deploy.runtime.clip import ClipRuntime
from pixelforge.deploy.runtime.compress import CompressionRuntime
from pixelforge.deploy.runtime.denoise import DenoiseRuntime
from pixelforge.deploy.runtime.detect import DetectionRuntime
from pixelforge.deploy.runtime.gan import GANRuntime
from pixelforge.deploy.runtime.instance import InstanceRuntime
from pixelforge.deploy.runtime.package import package_task
from pixelforge.deploy.runtime.segment import SegmentationRuntime
from pixelforge.deploy.runtime.session import ModelLoaders
from pixelforge.deploy.runtime.style import StyleRuntime
from pixelforge.errors import PixelforgeError

RUNTIMES: dict[str, type[TaskRuntime]] = {
    cls.task: cls for cls in (Runtime, CaptionRuntime, ClipRuntime, CompressionRuntime, DenoiseRuntime,
                              DetectionRuntime, GANRuntime, InstanceRuntime, SegmentationRuntime, StyleRuntime)
}


def runtime_class(package: str | Path) -> type[TaskRuntime]:
    """The runtime class for `package` (its JSON files are read, no model is loaded): a clear error early."""
    task = package_task(package)
    if task not in RUNTIMES:
        raise PixelforgeError(f"{package}: a package for task {task!r}, which this pixelforge cannot run; "
                              f"known tasks: {', '.join(sorted(RUNTIMES))}")
    return RUNTIMES[task]


def load_runtime(package: str | Path, precision: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None, spin: bool = True,
                 loaders: ModelLoaders | None = None) -> TaskRuntime:
    """The runtime for a package of any task, its model loaded (`precision`: fp32 | int8 | fp16, default the
    package's; `loaders`: model formats beyond ONNX, see session.py)."""
    return runtime_class(package)(package, precision, threads, providers, spin, loaders=loaders)


def predict_package(package: str | Path, paths: list, out: str | Path | None = None, *, precision: str | None = None,
                    loaders: ModelLoaders | None = None, **options) -> list[dict]:
    """`pixelforge predict PACKAGE PATHS` for any task: one result dict per image (files, folders, globs).

    Options are the task's own: classify `top_k`, `batch_size`; detect and instance `score_threshold`, `nms_iou`;
    any task `progress` (called with the number of images done). Box and mask tasks write their pictures and
    results into `out` (default `predictions` in the current directory, or predictions-2... after an earlier call;
    never inside the package); classification
    writes nothing. Every row has `path` and `task`, and `output` when it wrote a file (rows.py).

    Example:
        >>> predict_package("packages/shapes", ["photos/"], top_k=2)[0]["top_k"][1]["label"]  # doctest: +SKIP
        'star'
    """
    files = collect_paths(list(paths))
    if not files:
        raise PixelforgeError(f"no images found in {', '.join(map(str, paths))}")
    runtime = load_runtime(package, precision, loaders=loaders)
    with multi_frame_warnings():  # an animated GIF or a TIFF stack: frame 1 is predicted, and the user is told
        return runtime.predict_files(files, out, **options)
