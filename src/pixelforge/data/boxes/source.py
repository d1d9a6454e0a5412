"""What a detection dataset is once read: images with boxes, whatever format they were stored in.

`read_boxes` recognises the layout of a path and hands it to the COCO, YOLO or Pascal VOC reader; all of them return
the same `BoxSource`: a list of `BoxImage`s (absolute XYXY pixel boxes, COCO category ids 1..K, crowd flags and,
for instance segmentation, polygons / RLE) plus the category names. Layouts understood:

    DIR/annotations/{train,val,test}.json + DIR/images/...   COCO (the built-in layout; instances_val2017.json -> val)
    FILE.json                                                one COCO file, images beside it or in images/
    DIR/data.yaml (or FILE.yaml) + images/ + labels/         YOLO (`cls cx cy w h`, normalised)
    DIR/Annotations/*.xml + DIR/JPEGImages/                  Pascal VOC (ImageSets/Main/{train,val,test}.txt)

Readers run in one of two modes. Strict (training): the first mistake raises a one-line `PixelforgeError` naming
the file and annotation id / line. Lenient (`pixelforge data check`): a `Problems` collector lists every mistake by
kind and reading goes on, so a broken dataset is described, never crashed on.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pixelforge.errors import PixelforgeError

SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass
class BoxImage:
    """One image and its objects. Boxes are float32 [N, 4] XYXY in pixels of the original file."""

    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray  # int64 [N] COCO category ids
    iscrowd: np.ndarray  # bool [N]; crowd regions are ignored by COCO evaluation, never trained on as objects
    image_id: int
    split: str | None
    segmentations: list | None = None  # per box: list of polygons [[x, y, ...], ...] or an RLE dict
    refs: list[str] | None = None  # per box: where it is written ("a.json: annotation 7"), for `data check`


@dataclass
class BoxSource:
    """A resolved detection dataset: its images, category names by COCO id, and where it was read from."""

    images: list[BoxImage]
    categories: dict[int, str]
    origin: str

    def split(self, name: str) -> list[BoxImage]:
        return [image for image in self.images if image.split == name]

    @property
    def has_splits(self) -> bool:
        return any(image.split is not None for image in self.images)

    @property
    def category_ids(self) -> list[int]:
        """Category ids in the order that makes contiguous labels: label i+1 is `category_ids[i]` (0 = background)."""
        return sorted(self.categories)

    @property
    def classes(self) -> list[str]:
        return [self.categories[i] for i in self.category_ids]


class Problems:
    """Where readers send data mistakes: raised at once (strict, for training) or listed by kind (for `data check`).

    Example:
        >>> problems = Problems(strict=False)
        >>> problems.add("unknown_category", "a.json: annotation 7 has category_id 9, not in categories")
        >>> problems.count
        1
    """

    def __init__(self, strict: bool = True):
        self.strict = strict
        self.by_kind: dict[str, list[str]] = defaultdict(list)

    def add(self, kind: str, message: str) -> None:
        if self.strict:
            raise PixelforgeError(message)
        self.by_kind[kind].append(message)

    def note(self, kind: str, message: str) -> None:
        """A problem that never stops training (the image is skipped): listed, or logged when strict."""
        if self.strict:
            logging.getLogger("pixelforge").warning("skipping: %s", message)
        else:
            self.by_kind[kind].append(message)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.by_kind.values())


def empty_boxes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool)


def image_size(path: Path) -> tuple[int, int] | None:
    """Upright (width, height) from the file header only (EXIF rotation applied), or None when it cannot be opened."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            # Orientations 5-8 store the photo sideways; pixelforge decodes it upright (as labelling tools show it).
            return img.size[::-1] if img.getexif().get(0x0112, 1) in (5, 6, 7, 8) else img.size
    except Exception:  # noqa: BLE001 - missing or unreadable files are reported by the caller / data check
        return None


def split_from_name(name: str) -> str | None:
    """The split a file or folder name stands for: `instances_val2017` -> val, `train.txt` -> train, else None."""
    stem = Path(name).stem.lower()
    if stem in SPLIT_ALIASES:
        return SPLIT_ALIASES[stem]
    for word in ("train", "validation", "valid", "val", "test"):
        if word in stem:
            return SPLIT_ALIASES[word]
    return None


def copy_images(images: list[BoxImage], root: Path, by_split: bool = True) -> list[Path]:
    """Copy (hard-link when possible) each image to `root/<split>/<name>` (unsplit: train) or `root/<name>`.

    Returns the new paths, in order. Two files that would share a name get the image id as a prefix.
    """
    import os
    import shutil

    taken: set[Path] = set()
    targets = []
    for image in images:
        target = (root / (image.split or "train") if by_split else root) / image.path.name
        if target in taken:
            target = target.with_name(f"{image.image_id}_{image.path.name}")
        taken.add(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if image.path.exists() and not target.exists():
            try:
                os.link(image.path, target)
            except OSError:  # another file system, or links not allowed
                shutil.copy2(image.path, target)
        targets.append(target)
    return targets


def detect_format(path: Path) -> str:
    """Which reader `path` needs: "coco", "yolo" or "voc"; raises naming what was looked for."""
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        if path.suffix.lower() in (".yaml", ".yml"):
            return "yolo"
        raise PixelforgeError(f"{path}: not a detection dataset file; give a COCO .json, a YOLO data.yaml or a folder")
    if any("names" in p.read_text(errors="replace") for p in [*path.glob("*.yaml"), *path.glob("*.yml")]):
        return "yolo"
    if (path / "Annotations").is_dir():
        return "voc"
    if any((path / "annotations").glob("*.json")) or any(path.glob("*.json")):
        return "coco"
    raise PixelforgeError(
        f"{path}: no detection layout found; expected annotations/*.json (COCO), data.yaml (YOLO) "
        "or Annotations/*.xml (Pascal VOC)"
    )


def read_boxes(path: str | Path, problems: Problems | None = None) -> BoxSource:
    """Read a COCO, YOLO or Pascal VOC dataset at `path` into a `BoxSource`.

    Args:
        path: a dataset folder or a COCO .json / YOLO .yaml file.
        problems: a lenient `Problems` to list mistakes in instead of raising (what `data check` does).

    Raises:
        PixelforgeError: the path is missing or not a detection dataset, or (strict) a mistake in the labels,
            naming the file and annotation id or line.

    Example:
        >>> source = read_boxes("shapes_detect")  # doctest: +SKIP
        >>> source.classes, len(source.split("train"))  # doctest: +SKIP
        (['circle', 'square', 'triangle', 'star'], 240)
    """
    from importlib import import_module

    path = Path(path).expanduser()
    if not path.exists():
        raise PixelforgeError(f"{path}: no such file or folder; give a COCO, YOLO or Pascal VOC dataset")
    problems = problems or Problems(strict=True)
    name = detect_format(path)
    # Imported here: each reader module imports this one for BoxImage / BoxSource.
    source = getattr(import_module(f"pixelforge.data.boxes.{name}"), f"read_{name}")(path, problems)
    if not source.images:
        raise PixelforgeError(f"{path}: the annotations list no images; add images or point at another folder")
    return source


def make_box_splits(source: BoxSource, val_fraction: float = 0.2, test_fraction: float = 0.0,
                    seed: int = 0) -> BoxSource:
    """Give every image without a split one of train/val/test, seeded; images that carry a split keep it.

    A dataset that comes with a train split but no val split (a YOLO yaml with only `train:`) has its val (and
    test, when asked) images drawn from train, because training without validation cannot pick a best checkpoint.

    Example:
        >>> imgs = [BoxImage(Path(f"{i}.png"), 8, 8, *empty_boxes(), i, None) for i in range(10)]
        >>> from collections import Counter
        >>> sorted(Counter(i.split for i in make_box_splits(BoxSource(imgs, {1: "a"}, "mem"), 0.2).images).items())
        [('train', 8), ('val', 2)]
    """
    has_val = any(image.split == "val" for image in source.images)
    pool = [i for i, image in enumerate(source.images)
            if image.split is None or (not has_val and image.split == "train")]
    if not pool:
        return source
    if not 0 < val_fraction + test_fraction < 1:
        raise PixelforgeError(f"val_fraction + test_fraction must be between 0 and 1, got {val_fraction + test_fraction}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(pool)
    n = len(order)
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 and not has_val else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 and not any(
        image.split == "test" for image in source.images) else 0
    n_val = min(n_val, max(n - n_test - 1, 0))
    assigned = {int(index): "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
                for rank, index in enumerate(order)}
    images = [replace(image, split=assigned[i]) if i in assigned else image for i, image in enumerate(source.images)]
    return BoxSource(images, source.categories, source.origin)
