"""The torch-free runtime: a package of any task predicted with ONNX Runtime, NumPy, PIL (and OpenCV to draw).

Nothing here imports torch, ever (a test runs it with torch made unimportable). Lowest deploy layer: it imports
only `pixelforge.errors` and the torch-free `pixelforge.data` readers; export, serve, video and the CLI build on it.

    package.py     reading a package's JSON files (`Package`, `read_package`, file names, `package_task`)
    preprocess.py  image decoding and the classification eval transform in NumPy/PIL; upload errors
    session.py     ONNX Runtime sessions; other model formats through loaders handed in from the torch side
    base.py        `TaskRuntime`: the interface serve, video and predict use for every task
    registry.py    `RUNTIMES` {task: runtime class}, `load_runtime(package)`, `predict_package(package, paths)`
    classify.py    `Runtime`: classification (top-k labels, micro-batchable crops)
    dense.py       what the box and mask runtimes share
    detect.py / instance.py / segment.py   the detection, instance-segmentation and segmentation runtimes
    answers.py     the JSON answers for boxes and masks, and the overlays' one-line summaries
    boxes.py       IoU and NMS in NumPy;  rle.py: COCO RLE;  draw.py: mask PNGs, boxes and masks on frames
    box_files.py / mask_files.py   the files `predict` writes for box and mask packages
    rows.py        the keys every `predict` row has (path, task, output), for runs and packages alike

Example:
    >>> from pixelforge.deploy.runtime import load_runtime, predict_package
    >>> predict_package("packages/shapes", ["star.png"], top_k=2)[0]["label"]  # doctest: +SKIP
    'star'
"""

from pixelforge.deploy.runtime.classify import Runtime
from pixelforge.deploy.runtime.package import Package, package_task, read_package
from pixelforge.deploy.runtime.registry import RUNTIMES, load_runtime, predict_package, runtime_class

__all__ = ["RUNTIMES", "Package", "Runtime", "load_runtime", "package_task", "predict_package", "read_package",
           "runtime_class"]
