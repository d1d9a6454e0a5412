"""The package folder `pixelforge export` writes, and reading it back without torch.

    PACKAGE/model.onnx         fp32 model, dynamic batch axis (or model.pt for --format torchscript)
            model.int8.onnx    with --int8: static QDQ int8 (the runtime's default when present)
            model.fp16.onnx    with --fp16: for GPU runtimes
            preprocess.json    img_size, resize mode and short side, crop, mean/std, channel order, layout
            classes.json       class names in output order
            package.json       format, model files, default precision, input/output names, export settings
            parity.json        the parity report: max |delta logit|, top-1 agreement, accuracies per precision
            model_card.md      data, metrics, intended use, limitations, export settings, parity
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pixelforge.deploy.preprocess import Preprocess
from pixelforge.errors import PixelforgeError

PREPROCESS_FILE = "preprocess.json"
CLASSES_FILE = "classes.json"
MANIFEST_FILE = "package.json"
PARITY_FILE = "parity.json"
CARD_FILE = "model_card.md"
PRECISIONS = ("fp32", "int8", "fp16")


def is_package(path: str | Path) -> bool:
    """True for a folder written by `pixelforge export` (it holds preprocess.json)."""
    return (Path(path) / PREPROCESS_FILE).is_file()


@contextmanager
def staged_folder(out: Path):
    """Yield a hidden sibling folder to build a package in; it becomes `out` only if the block finishes.

    A failed export (parity refused, Ctrl-C, a crash) leaves nothing at `out`, and a package is never half-written.
    `out` must not exist or be empty (the exporters check that first, with a message that names it).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        yield staging
        if out.exists():
            out.rmdir()  # empty (checked by the caller); the rename needs the name free
        staging.chmod(0o755)  # mkdtemp makes it private; a package is meant to be shared
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_dense_package_files(staging: Path, run_dir: Path, preprocess: dict, classes: list[str], manifest: dict,
                              opset: int) -> None:
    """preprocess.json, classes.json, package.json (with where it came from) and the run's model card, as a
    detection, segmentation or instance package holds them beside its model."""
    import time

    write_json(staging / PREPROCESS_FILE, preprocess)
    write_json(staging / CLASSES_FILE, classes)
    card = Path(run_dir) / CARD_FILE  # the run's card travels with the model (web page, /v1/model)
    if card.is_file():
        shutil.copyfile(card, staging / CARD_FILE)
    write_json(staging / MANIFEST_FILE, {
        "format": "onnx", "models": {"fp32": "model.onnx"}, "default_precision": "fp32", "input_name": "image",
        **manifest, "export": {"run": str(Path(run_dir).resolve()), "checkpoint": "best.ckpt", "opset": opset,
                               "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}})


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def read_json_file(path: Path):
    if not path.is_file():
        raise PixelforgeError(f"{path}: missing; is {path.parent} a package written by `pixelforge export`?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PixelforgeError(f"{path}: not valid JSON ({exc}); export the package again") from None


@dataclass
class Package:
    folder: Path
    manifest: dict
    preprocess: Preprocess
    classes: list[str]

    @property
    def format(self) -> str:
        return self.manifest["format"]

    @property
    def precisions(self) -> list[str]:
        return [p for p in PRECISIONS if p in self.manifest["models"]]

    def model_path(self, precision: str | None = None) -> Path:
        """The model file for `precision` (fp32 | int8 | fp16; default: the package's default precision)."""
        precision = precision or self.manifest["default_precision"]
        files = self.manifest["models"]
        if precision not in files:
            raise PixelforgeError(f"{self.folder}: no {precision} model in this package (it has "
                                  f"{', '.join(self.precisions)}); export with --{precision} or choose another")
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
    manifest = read_json_file(folder / MANIFEST_FILE)
    preprocess = Preprocess.from_json(read_json_file(folder / PREPROCESS_FILE))
    classes = read_json_file(folder / CLASSES_FILE)
    return Package(folder, manifest, preprocess, classes)
