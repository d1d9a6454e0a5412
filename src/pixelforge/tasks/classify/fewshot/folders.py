"""Reading a few-shot support folder (one subfolder a class) and a query folder (class subfolders, or loose images).

Every problem a user can make here is a one-line error naming the folder: a class with no images, a query class the
support set lacks, fewer support images than `--shots`, an empty folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixelforge.data.images import UNREAD_FORMATS, is_image_file, list_images, unidentified_reason
from pixelforge.data.sources import Sample, refuse_unread_formats
from pixelforge.errors import PixelforgeError


@dataclass
class Query:
    samples: list[Sample]
    labelled: bool  # True when the images sit in class subfolders (then they are scored)


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _require_folder(folder: Path, option: str) -> Path:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise PixelforgeError(f"{folder}: {option} must be a folder ({'not found' if not folder.exists() else 'a file'})")
    return folder


def read_support(folder: Path, shots: int | None = None, seed: int = 0) -> tuple[list[Sample], list[str]]:
    """(samples, sorted class names) of a support folder; with `shots`, a seeded sample of K images per class."""
    folder = _require_folder(folder, "--support")
    class_dirs = _class_dirs(folder)
    if len(class_dirs) < 2:
        raise PixelforgeError(f"{folder}: the support set needs at least 2 class subfolders (SUPPORT/<class>/*.jpg); "
                              f"found {len(class_dirs)}")
    rng = np.random.default_rng(seed)
    samples = []
    for class_dir in class_dirs:
        images = list_images(class_dir)
        if not images:
            refuse_unread_formats([class_dir])  # its iPhone .HEIC photos are named as such, as `predict` names them
            raise PixelforgeError(f"{class_dir}: support class {class_dir.name!r} has no images")
        if shots is not None:
            if len(images) < shots:
                raise PixelforgeError(f"{class_dir}: support class {class_dir.name!r} has {len(images)} images, "
                                      f"fewer than --shots {shots}")
            images = [images[i] for i in sorted(rng.choice(len(images), size=shots, replace=False))]
        samples += [Sample(path, class_dir.name) for path in images]
    return samples, [d.name for d in class_dirs]


def read_query(path: Path, support_classes: list[str], support_folder: Path) -> Query:
    """The query images: labelled by their class subfolder, or unlabelled (images directly in the folder or a file)."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix.lower() in UNREAD_FORMATS:  # the reason every reader gives (HEIC, SVG, camera RAW)
            raise PixelforgeError(f"{path}: {unidentified_reason(path)}")
        if not is_image_file(path):
            raise PixelforgeError(f"{path}: --query is not an image file or a folder")
        return Query([Sample(path, "")], labelled=False)
    path = _require_folder(path, "--query")
    class_dirs = [d for d in _class_dirs(path) if list_images(d)]
    loose = [p for p in sorted(path.iterdir()) if p.is_file() and is_image_file(p)]
    if class_dirs and loose:
        raise PixelforgeError(f"{path}: holds both class subfolders and loose images (e.g. {loose[0].name}); "
                              f"put every image in a class subfolder, or none")
    if not class_dirs:
        if not loose:
            refuse_unread_formats([path])
            raise PixelforgeError(f"{path}: no query images found")
        return Query([Sample(p, "") for p in loose], labelled=False)
    missing = [d for d in class_dirs if d.name not in support_classes]
    if missing:
        raise PixelforgeError(f"{missing[0]}: query class {missing[0].name!r} is not in the support set "
                              f"{support_folder} (its classes: {', '.join(support_classes)})")
    return Query([Sample(p, d.name) for d in class_dirs for p in list_images(d)], labelled=True)
