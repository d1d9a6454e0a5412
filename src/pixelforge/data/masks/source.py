"""Where segmentation images and masks come from: every layout becomes one list of (image, mask, split) pairs.

Layouts understood (detected in this order):

    FILE.json or DIR/annotations/*.json  COCO polygons/RLE, rasterised once to PNG masks (see `masks.coco`)
    DIR/JPEGImages + DIR/SegmentationClass [+ ImageSets/Segmentation/{train,val,test}.txt]   Pascal VOC
    DIR/images/{train,val,test}/NAME.* + DIR/masks/{train,val,test}/NAME.png    the built-in layout
    DIR/images/NAME.* + DIR/masks/NAME.*     no splits: pixelforge makes seeded ones (`make_mask_splits`)
    DIR/{train,val,test}/images + DIR/{train,val,test}/masks

Masks are matched to images by their path below images/ without the suffix (a .jpg image takes a .png or .tif
mask; `NAME_mask.png` also matches `NAME.jpg`). A mask pixel's value is its class id; `ignore_index` (255) marks
pixels no loss or metric looks at. Class names come from DIR/classes.json or classes.txt, VOC's 21 names, COCO's
categories, or else `class_0..class_{K-1}` with K = the largest id found + 1 (or `num_classes`).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pixelforge.data.images import ImageReadError, list_broken_links, list_images, missing_reason
from pixelforge.data.masks.images import load_mask, probe_image
from pixelforge.data.masks.samples import MaskSample, PairProblem
from pixelforge.data.sources import SPLIT_ALIASES
from pixelforge.errors import PixelforgeError

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
MASK_DIR_NAMES = ("masks", "labels", "annotations", "gt")
_MASK_SUFFIXES = ("_mask", "_masks", "_label", "_labels", "_gt", "_seg")
SPLITS = {**SPLIT_ALIASES, "training": "train"}  # ADE20K-style images/training + annotations/training


@dataclass
class MaskSource:
    """A resolved segmentation dataset: image/mask pairs, class names in index order, and what the images are."""

    samples: list[MaskSample]
    classes: list[str]
    ignore_index: int
    origin: str
    channels: int = 3  # 3 when any probed image is colour, else 1
    bit_depth: int = 8  # 16 when any probed image is 16-bit

    def split(self, name: str) -> list[MaskSample]:
        return [s for s in self.samples if s.split == name]

    @property
    def has_splits(self) -> bool:
        return any(s.split is not None for s in self.samples)


def read_masks(path: str | Path, ignore_index: int = 255, num_classes: int | None = None) -> MaskSource:
    """Read any supported segmentation layout into a `MaskSource`.

    Raises:
        PixelforgeError: one line naming the first file without a partner, the unreadable file, or the bad layout.

    Example:
        >>> from pixelforge.data.masks.shapes import write_shapes_segment; import tempfile
        >>> root = write_shapes_segment(Path(tempfile.mkdtemp()), seed=0, count=6)
        >>> src = read_masks(root); (src.classes[1], len(src.samples), src.channels)
        ('circle', 6, 3)
    """
    source, problems = scan_masks(path, ignore_index, num_classes)
    for problem in (p for p in problems if p.kind == "broken_link"):
        logging.getLogger("pixelforge").warning("skipping: %s", problem.message)
    problems = [p for p in problems if p.kind != "broken_link"]
    lossy = next((s.mask for s in source.samples if s.mask and s.mask.suffix.lower() in (".jpg", ".jpeg")), None)
    if lossy:
        raise PixelforgeError(f"{lossy}: a mask saved as JPEG, whose lossy compression changes the class ids along "
                              "every edge; save the masks as PNG (lossless)")
    if problems:
        more = f" ({len(problems) - 1} more such problems; `pixelforge data check --task segment` lists them)" \
            if len(problems) > 1 else ""
        raise PixelforgeError(problems[0].message + more)
    if not source.samples:
        raise PixelforgeError(f"{path}: no image/mask pairs found")
    return source


def scan_masks(path: str | Path, ignore_index: int = 255, num_classes: int | None = None,
               strict_classes: bool = True) -> tuple[MaskSource, list[PairProblem]]:
    """Like `read_masks`, but return pairing problems instead of raising on them (what `check_masks` uses).

    With `strict_classes=False` a mask that cannot be read while counting classes is skipped, not raised.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise PixelforgeError(f"{root}: no such file or folder; give a segmentation folder (images/ + masks/), "
                              "a VOC folder or a COCO .json")
    problems: list[PairProblem] = []
    classes: list[str] | None = None
    if root.is_file() or _coco_jsons(root):
        from pixelforge.data.masks.coco import read_coco_masks

        samples, classes, problems = read_coco_masks(root, ignore_index)
        origin = f"coco:{root}"
    elif (voc := _voc_root(root)) is not None:
        samples, problems = _read_voc(voc)
        classes, origin = VOC_CLASSES, f"voc:{voc}"
    else:
        samples, problems = _read_folders(root)
        origin = str(root)
    folder = root if root.is_dir() else root.parent
    classes = _class_names(folder, classes, samples, ignore_index, num_classes, strict_classes)
    channels, depth = _probe(samples)
    return MaskSource(samples, classes, ignore_index, origin, channels, depth), problems


def _coco_jsons(root: Path) -> list[Path]:
    if (root / "images").is_dir() and any((root / d).is_dir() for d in ("masks", "labels")):
        return []
    return sorted((root / "annotations").glob("*.json")) if (root / "annotations").is_dir() else []


def _voc_root(root: Path) -> Path | None:
    candidates = [root, *sorted(root.glob("VOC*")), *sorted(root.glob("VOCdevkit/VOC*"))]
    for folder in candidates:
        if (folder / "JPEGImages").is_dir() and (folder / "SegmentationClass").is_dir():
            return folder
    return None


def _read_voc(root: Path) -> tuple[list[MaskSample], list[PairProblem]]:
    images = {p.stem: p for p in list_images(root / "JPEGImages")}
    masks = {p.stem: p for p in list_images(root / "SegmentationClass")}
    lists = {SPLITS[f.stem]: f for f in sorted((root / "ImageSets" / "Segmentation").glob("*.txt"))
             if f.stem in SPLITS}
    samples: list[MaskSample] = []
    problems: list[PairProblem] = []
    if lists:
        for split, list_file in lists.items():
            for line_no, line in enumerate(list_file.read_text().splitlines(), start=1):
                name = line.split()[0] if line.strip() else ""
                if not name:
                    continue
                if name not in images:
                    problems.append(PairProblem("missing_image", f"{list_file}:{line_no}", f"{list_file}:{line_no}: "
                                                f"image {name!r} is not in JPEGImages/; remove the line or add the image"))
                elif name not in masks:
                    if split != "test":  # VOC's test list has no public masks
                        problems.append(PairProblem("missing_mask", str(images[name]), f"{images[name]}: no mask "
                                                    f"SegmentationClass/{name}.png for {list_file.name}:{line_no}"))
                else:
                    samples.append(MaskSample(images[name], masks[name], split))
        return samples, problems
    # No lists: every mask is a sample; JPEGImages holds many unlabelled photos, which is normal for VOC.
    for name, mask in sorted(masks.items()):
        if name in images:
            samples.append(MaskSample(images[name], mask, None))
        else:
            problems.append(PairProblem("missing_image", str(mask), f"{mask}: mask without image "
                                        f"JPEGImages/{name}.jpg; add the image or delete the mask"))
    return samples, problems


def _pair_key(relative: Path, is_mask: bool) -> str:
    stem = relative.stem
    if is_mask:
        for suffix in _MASK_SUFFIXES:
            if stem.lower().endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
                break
    return (relative.parent / stem).as_posix()


def _pair(image_dir: Path, mask_dir: Path, split: str | None) -> tuple[list[MaskSample], list[PairProblem]]:
    images: dict[str, Path] = {}
    for p in list_images(image_dir):
        images.setdefault(_pair_key(p.relative_to(image_dir), False), p)
    masks: dict[str, Path] = {}
    # .png first: when NAME.png and NAME.tif both exist, the lossless index PNG is the mask.
    for p in sorted(list_images(mask_dir), key=lambda q: (q.suffix.lower() != ".png", str(q))):
        masks.setdefault(_pair_key(p.relative_to(mask_dir), True), p)
    samples = [MaskSample(images[k], masks[k], split) for k in sorted(images) if k in masks]
    problems = [PairProblem("missing_mask", str(images[k]), f"{images[k]}: image without mask (looked for "
                            f"{mask_dir / k}.png); add the mask or remove the image") for k in sorted(images) if k not in masks]
    problems += [PairProblem("missing_image", str(masks[k]), f"{masks[k]}: mask without image (looked for "
                             f"{image_dir / k}.*); add the image or remove the mask") for k in sorted(masks) if k not in images]
    # Invisible to list_images: reported by `data check` and logged by training, never silently dropped.
    problems += [PairProblem("broken_link", str(link), f"{link}: {missing_reason(link)}; left out")
                 for folder in (image_dir, mask_dir) if folder.is_dir() for link in list_broken_links(folder)]
    return samples, problems


def _mask_dir(folder: Path) -> Path | None:
    return next((folder / d for d in MASK_DIR_NAMES if (folder / d).is_dir()), None)


def _read_folders(root: Path) -> tuple[list[MaskSample], list[PairProblem]]:
    samples: list[MaskSample] = []
    problems: list[PairProblem] = []
    image_dir, mask_dir = root / "images", _mask_dir(root)
    if image_dir.is_dir() and mask_dir is not None:
        split_dirs = {SPLITS[d.name.lower()]: d.name for d in sorted(image_dir.iterdir())
                      if d.is_dir() and d.name.lower() in SPLITS}
        if split_dirs:
            for split, name in split_dirs.items():
                found, issues = _pair(image_dir / name, mask_dir / name, split)
                samples, problems = samples + found, problems + issues
        else:
            samples, problems = _pair(image_dir, mask_dir, None)
        return samples, problems
    split_first = {SPLITS[d.name.lower()]: d for d in sorted(root.iterdir())
                   if d.is_dir() and d.name.lower() in SPLITS and (d / "images").is_dir()}
    for split, folder in split_first.items():
        if (masks := _mask_dir(folder)) is None:
            raise PixelforgeError(f"{folder}: has images/ but no masks/ folder next to it")
        found, issues = _pair(folder / "images", masks, split)
        samples, problems = samples + found, problems + issues
    if not split_first:
        hint = " (found images/ but no masks/ beside it)" if image_dir.is_dir() else ""
        raise PixelforgeError(f"{root}: not a segmentation dataset{hint}; expected images/ + masks/ "
                              "(optionally with train/val/test subfolders), VOC JPEGImages/ + SegmentationClass/, "
                              "or a COCO .json")
    return samples, problems


def read_class_file(folder: Path) -> list[str] | None:
    """The class names in FOLDER/classes.json or classes.txt (index = class id), or None without either."""
    if (path := folder / "classes.json").is_file():
        try:
            names = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise PixelforgeError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(names, dict):  # {"0": "background", "1": "cell"}
            try:
                ordered = sorted((int(k), str(v)) for k, v in names.items())
            except ValueError:
                raise PixelforgeError(f"{path}: keys must be class ids (0, 1, ...)") from None
            if [k for k, _ in ordered] != list(range(len(ordered))):
                raise PixelforgeError(f"{path}: class ids must be 0..{len(ordered) - 1} without gaps")
            return [v for _, v in ordered]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise PixelforgeError(f'{path}: must be a list of class names, index = class id: ["background", "cell"]')
        return names
    if (path := folder / "classes.txt").is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return None


def _largest_id(path: Path, ignore_index: int, strict: bool) -> tuple[int, bool]:
    """The largest class id in a mask (-1 when it cannot be read) and whether it holds `ignore_index` pixels."""
    try:
        ids = np.unique(load_mask(path))
    except (ImageReadError, PixelforgeError):
        if strict:
            raise
        return -1, False
    kept = ids[ids != ignore_index]
    return (int(kept.max()) if kept.size else 0), kept.size < ids.size


def _class_names(folder: Path, known: list[str] | None, samples: list[MaskSample], ignore_index: int,
                 num_classes: int | None, strict: bool) -> list[str]:
    names = read_class_file(folder) or known
    if names is not None:
        if num_classes is not None and num_classes != len(names):
            raise PixelforgeError(f"{folder}: num_classes={num_classes} but the class list has {len(names)} names "
                                  f"({', '.join(names[:5])}...); drop num_classes or fix the class list")
        return names
    if num_classes is None:
        masks = [s.mask for s in samples if s.mask is not None]
        with ThreadPoolExecutor(max_workers=4) as pool:
            found = list(pool.map(lambda p: _largest_id(p, ignore_index, strict), masks))
        largest = max((i for i, _ in found), default=0)
        if strict and largest == 0 and any(ignored for _, ignored in found):
            # Binary masks drawn as 0/255: every object pixel would be ignored, and the model learn only background.
            raise PixelforgeError(f"{folder}: the masks hold only 0 (background) and {ignore_index} (the ignore index: "
                                  f"never learnt), so there is no object to learn; binary masks saved as "
                                  f"0/{ignore_index} must mark objects with 1: re-save them as 0/1")
        num_classes = max(largest + 1, 2)  # background and at least one object class
    return [f"class_{i}" for i in range(num_classes)]


def _probe(samples: list[MaskSample], count: int = 16) -> tuple[int, int]:
    channels, depth = 1, 8
    picks = [samples[int(i)] for i in np.linspace(0, len(samples) - 1, min(count, len(samples)))] if samples else []
    for sample in picks:
        try:
            c, d = probe_image(sample.image)
        except Exception:  # noqa: BLE001 - unreadable files are reported by the dataset / check, not here
            continue
        channels, depth = max(channels, c), max(depth, d)
    return channels, depth


def make_mask_splits(source: MaskSource, val_fraction: float = 0.2, test_fraction: float = 0.0,
                     seed: int = 0) -> MaskSource:
    """Give every sample without a split one of train/val/test at random (seeded); given splits are kept.

    Example:
        >>> src = MaskSource([MaskSample(Path(f"{i}.png"), Path(f"{i}m.png"), None) for i in range(10)], ["bg", "a"], 255, "mem")
        >>> [s.split for s in make_mask_splits(src, 0.2).samples].count("val")
        2
    """
    unsplit = [i for i, s in enumerate(source.samples) if s.split is None]
    if not unsplit:
        return source
    if not 0 < val_fraction + test_fraction < 1:
        raise PixelforgeError(f"val_fraction + test_fraction must be between 0 and 1, got {val_fraction + test_fraction}")
    n = len(unsplit)
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    if n - n_val - n_test < 1:
        raise PixelforgeError(f"{source.origin}: only {n} image(s) without a split; need at least "
                              f"{n_val + n_test + 1} for train/val{'/test' if n_test else ''}")
    order = np.random.default_rng(seed).permutation(n)
    names = {}
    for rank, k in enumerate(order):
        names[unsplit[k]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    samples = [replace(s, split=names[i]) if i in names else s for i, s in enumerate(source.samples)]
    return replace(source, samples=samples)



def class_names_near(mask_folder: Path, levels: int = 3) -> list[str] | None:
    """The class names of the dataset a folder of masks belongs to: classes.json or classes.txt in the folder or one
    of its `levels` parents (the built-in layout keeps them at DIR/, masks in DIR/masks/<split>/)."""
    for folder in [mask_folder, *mask_folder.resolve().parents][:levels + 1]:
        names = read_class_file(folder)
        if names is not None:
            return names
    return None
