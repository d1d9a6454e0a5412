"""The package folder `pixelforge export` writes, and reading it back without torch.

A classification package:

    PACKAGE/model.onnx         fp32 model, dynamic batch axis (or model.pt for --format torchscript)
            model.int8.onnx    with --int8: static QDQ int8 (the runtime's default when present)
            model.fp16.onnx    with --fp16: for GPU runtimes
            preprocess.json    img_size, resize mode and short side, crop, mean/std, channel order, layout
            classes.json       class names in output order
            package.json       format, model files, default precision, input/output names, export settings
            parity.json        the parity report: max |delta logit|, top-1 agreement, accuracies per precision
            model_card.md      data, metrics, intended use, limitations, export settings, parity

Detection, segmentation and instance packages hold the same files (fp32 ONNX; every task's but compress's also
model.fp16.onnx with --fp16, and all but detect's, instance's and compress's model.int8.onnx with --int8; caption
and clip packages hold their second model's copies under a key of their own); package.json names the
"task" the package was exported for (absent: classification), and their preprocess.json is their exporter's own
dict (`DensePackage`). Writing packages is the export side's job (`pixelforge.deploy.export.folder`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pixelforge.deploy.runtime.preprocess import Preprocess
from pixelforge.errors import PixelforgeError
from pixelforge.formats import check_format

PREPROCESS_FILE = "preprocess.json"
CLASSES_FILE = "classes.json"
MANIFEST_FILE = "package.json"
PARITY_FILE = "parity.json"
CARD_FILE = "model_card.md"
PRECISIONS = ("fp32", "int8", "fp16")
# The tasks whose exporters add each lower precision (`--int8`, `--fp16`; the others refuse them and say why).
EXPORTED_PRECISIONS = {"int8": ("classify", "segment", "denoise", "style", "gan", "caption", "clip"),
                       "fp16": ("classify", "segment", "denoise", "style", "gan", "caption", "clip", "detect",
                                "instance")}


def is_package(path: str | Path) -> bool:
    """True for a folder written by `pixelforge export` (it holds preprocess.json)."""
    return (Path(path) / PREPROCESS_FILE).is_file()


def read_json_file(path: Path, expect: type | None = None):
    """A package's JSON file, or a one-line error naming it; `expect` (dict or list): what the file must hold."""
    if not path.is_file():
        raise PixelforgeError(f"{path}: missing; is {path.parent} a package written by `pixelforge export`?")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PixelforgeError(f"{path}: not valid JSON ({exc}); export the package again") from None
    if expect is not None and not isinstance(data, expect):  # a hand edit: the runtimes would fail far from here
        wanted = {dict: "an object {...}", list: "a list [...]"}[expect]
        raise PixelforgeError(f"{path}: holds {type(data).__name__} JSON where {wanted} belongs; "
                              f"export the package again")
    return data


class Manifest(dict):
    """package.json's object: a key the runtime needs and the file lacks (a hand edit, a package of another
    version) is one line naming the file and the key, not a KeyError deep in a runtime."""

    def __init__(self, data: dict, path: Path):
        super().__init__(data)
        self.path = path

    def __missing__(self, key):
        raise PixelforgeError(f"{self.path}: no {key!r}, which this package's runtime reads; export the package again")


def read_manifest(folder: Path) -> Manifest:
    """package.json, refused in one line when a newer pixelforge wrote it in a format this one cannot read."""
    manifest = Manifest(read_json_file(folder / MANIFEST_FILE, dict), folder / MANIFEST_FILE)
    check_format(folder, manifest, "package")
    return manifest


@dataclass
class Package:
    """A classification package's JSON files (`read_package`); the model itself is loaded by a runtime."""

    folder: Path
    manifest: dict
    preprocess: Preprocess
    classes: list[str]

    @property
    def format(self) -> str:
        return self.manifest["format"]

    @property
    def task(self) -> str:
        return self.manifest.get("task", "classify")

    @property
    def precisions(self) -> list[str]:
        return [p for p in PRECISIONS if p in self.manifest["models"]]

    def model_path(self, precision: str | None = None) -> Path:
        """The model file for `precision` (fp32 | int8 | fp16; default: the package's default precision)."""
        precision = precision or self.manifest["default_precision"]
        files = self.manifest["models"]
        if precision not in PRECISIONS:
            raise PixelforgeError(f"--precision {precision!r}: choose {', '.join(self.precisions)} (this package's "
                                  f"models)")
        if precision not in files:
            # "export again with --int8" alone sent a detection package's user to an option its export refuses.
            offered = EXPORTED_PRECISIONS.get(precision, ())
            advice = (f"or export again with --{precision}" if self.task in offered else
                      f"`pixelforge export` adds {precision} models to {', '.join(offered)} packages only")
            raise PixelforgeError(f"{self.folder}: no {precision} model in this package (it has "
                                  f"{', '.join(self.precisions)}); choose --precision {self.precisions[0]}, {advice}")
        path = self.folder / files[precision]
        if not path.is_file():
            raise PixelforgeError(f"{path}: model file missing; export the package again")
        return path

    @property
    def model_card(self) -> str:
        path = self.folder / CARD_FILE
        return path.read_text() if path.is_file() else ""

    @property
    def parity(self) -> dict | None:
        path = self.folder / PARITY_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def metadata(self) -> dict:
        """What `GET /v1/model` answers: name, classes, input, precisions, parity (no file system paths)."""
        return {
            "name": self.manifest.get("name", self.folder.name),
            "backbone": self.manifest.get("backbone"),
            "format": self.format,
            "precision": self.manifest["default_precision"],
            "precisions": self.precisions,
            "classes": self.classes,
            "preprocess": self.preprocess.to_json(),
            "parity": self.parity,
            "pixelforge_version": self.manifest.get("pixelforge_version"),
        }


def read_package(folder: str | Path) -> Package:
    """Read a package's JSON files (no model is loaded here).

    Example:
        >>> pkg = read_package("packages/shapes")  # doctest: +SKIP
        >>> pkg.classes, pkg.preprocess.img_size  # doctest: +SKIP
        (['circle', 'square', 'star', 'triangle'], 32)
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PixelforgeError(f"{folder}: no such package folder; pass the folder `pixelforge export --out` wrote")
    if not is_package(folder):
        raise PixelforgeError(f"{folder}: not a pixelforge package (no {PREPROCESS_FILE}); "
                              f"create one with `pixelforge export RUN --out {folder}`")
    manifest = read_manifest(folder)
    try:
        preprocess = Preprocess.from_json(read_json_file(folder / PREPROCESS_FILE, dict))
    except (KeyError, TypeError, ValueError) as exc:
        if manifest.get("task"):  # another task's package (only classification's manifest has none): no fault of it
            raise PixelforgeError(f"{folder}: a package of task {manifest['task']!r}, which `Runtime` (classification) cannot "
                                  f"read; load it with `load_runtime({str(folder)!r})`") from None
        problem = f"no {exc}" if isinstance(exc, KeyError) else exc
        raise PixelforgeError(f"{folder / PREPROCESS_FILE}: {problem}; export the package again") from None
    classes = read_json_file(folder / CLASSES_FILE, list)
    if manifest.get("num_classes", len(classes)) != len(classes):  # the model would answer classes it has no name for
        raise PixelforgeError(f"{folder / CLASSES_FILE}: {len(classes)} class names for a model of "
                              f"{manifest['num_classes']} classes ({MANIFEST_FILE}); export the package again")
    return Package(folder, manifest, preprocess, classes)


def package_task(folder: str | Path) -> str:
    """The task a package was exported for: package.json's "task" ("classify" for packages without one)."""
    folder = Path(folder)
    if not (folder / PREPROCESS_FILE).is_file():
        read_package(folder)  # raises the reader's error: no folder, or not a package
    return read_manifest(folder).get("task", "classify")


@dataclass
class DensePackage(Package):
    """A detection, segmentation or instance package's JSON files (its preprocess.json is the exporter's own
    dict); model files, model card and parity report are read as for classification."""

    preprocess: dict

    @property
    def format(self) -> str:
        return self.manifest.get("format", "onnx")

    def metadata(self, colors: dict[str, str] | None = None) -> dict:
        """What `GET /v1/model` answers for this package (no file system paths); `colors`: {class: hex colour}
        as the task's runtime draws them."""
        return {
            "name": self.manifest.get("name", self.folder.name), "task": self.task,
            "arch": self.manifest.get("arch"), "backbone": self.manifest.get("backbone"),
            "format": self.format,
            "precision": self.manifest.get("default_precision", "fp32"), "precisions": self.precisions,
            "classes": self.classes, "colors": colors or {},
            "preprocess": {k: v for k, v in self.preprocess.items() if k != "run"},
            "parity": self.parity, "pixelforge_version": self.manifest.get("pixelforge_version"),
        }


def read_dense_package(folder: str | Path) -> DensePackage:
    """Read a detection, segmentation or instance package's JSON files (no model is loaded)."""
    folder = Path(folder)
    package_task(folder)  # the reader's clear error for a folder that is not a package
    return DensePackage(folder, read_manifest(folder),
                        read_json_file(folder / PREPROCESS_FILE, dict), read_json_file(folder / CLASSES_FILE, list))
