"""COCO polygon/RLE annotations turned into semantic masks: rasterised once with pycocotools, cached as PNGs.

Class index = rank of the category id in sorted order + 1; 0 is background (pixels no annotation covers).
Larger objects are painted first so a small object on top of a large one stays visible; `iscrowd` regions are
painted with `ignore_index`, because a crowd region mixes the object with background and should not be scored.

Why a PNG cache: after rasterising, a COCO set is just the images/ + masks/ layout, so the dataset, the checks and
the augmentation code have one kind of input. The masks go to `$PIXELFORGE_HOME/masks/<json name>-<key>/`, where
the key hashes the json's path, size and modification time and the ignore index: editing the json makes a fresh
cache, and nothing is ever written next to the user's data.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from pixelforge.data.masks.images import save_mask
from pixelforge.data.sources import SPLIT_ALIASES
from pixelforge.errors import PixelforgeError

_CACHE_VERSION = "v1"  # bump when rasterisation changes, so stale caches are not reused


def split_from_name(json_path: Path) -> str | None:
    """instances_train2017.json -> train; val.json -> val; anything else -> None."""
    for token in json_path.stem.lower().replace("-", "_").split("_")[::-1]:
        word = token.rstrip("0123456789")
        if word in SPLIT_ALIASES:
            return SPLIT_ALIASES[word]
    return None


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PixelforgeError(f"{path}: cannot read the COCO file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise PixelforgeError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= data.keys():
        raise PixelforgeError(f"{path}: not a COCO file; it needs the keys images, annotations and categories")
    return data


def _image_bases(json_path: Path) -> list[Path]:
    here, up = json_path.parent, json_path.parent.parent
    token = json_path.stem.split("_")[-1]  # instances_val2017 -> val2017, COCO's own image folder
    return [here, here / "images", up / "images", up, up / token, up / "images" / token]


def _resolve(file_name: str, bases: list[Path]) -> Path | None:
    return next((base / file_name for base in bases if (base / file_name).is_file()), None)


def _annotation_mask(ann: dict, height: int, width: int) -> np.ndarray | None:
    from pycocotools import mask as mask_utils

    seg = ann.get("segmentation")
    if not seg:
        return None
    if isinstance(seg, list):  # polygons [[x1, y1, x2, y2, ...], ...]
        polygons = [p for p in seg if len(p) >= 6]
        if not polygons:
            return None
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(seg.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(seg, height, width)
    else:
        rle = dict(seg, counts=seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"])
    return mask_utils.decode(rle).astype(bool)


def rasterize(image: dict, anns: list[dict], class_of: dict[int, int], ignore_index: int, source: Path) -> np.ndarray:
    """One COCO image's annotations as an HxW class-index array."""
    height, width = int(image["height"]), int(image["width"])
    target = np.zeros((height, width), dtype=np.int64)
    for ann in sorted(anns, key=lambda a: -float(a.get("area") or 0)):
        if ann.get("category_id") not in class_of:
            raise PixelforgeError(f"{source}: annotation id {ann.get('id')} has category_id {ann.get('category_id')} "
                                  "which is not in categories; add the category or fix the annotation")
        try:
            region = _annotation_mask(ann, height, width)
        except Exception as exc:  # noqa: BLE001 - pycocotools raises bare exceptions for malformed input
            raise PixelforgeError(f"{source}: annotation id {ann.get('id')} has a malformed segmentation ({exc})") from None
        if region is not None:
            target[region] = ignore_index if ann.get("iscrowd") else class_of[ann["category_id"]]
    return target


def _cache_dir(json_path: Path, ignore_index: int) -> Path:
    from pixelforge.data.builtin import cache_root

    stat = json_path.stat()
    key = f"{json_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{ignore_index}|{_CACHE_VERSION}"
    digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
    return cache_root() / "masks" / f"{json_path.stem}-{digest}"


def _read_one(json_path: Path, ignore_index: int):
    from pixelforge.data.masks.samples import MaskSample, PairProblem

    data = _load_json(json_path)
    categories = sorted(data["categories"], key=lambda c: c["id"])
    class_of = {c["id"]: i + 1 for i, c in enumerate(categories)}
    anns_of: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        anns_of.setdefault(ann.get("image_id"), []).append(ann)
    if data["annotations"] and not any(a.get("segmentation") for a in data["annotations"]):
        raise PixelforgeError(f"{json_path}: annotations have boxes but no segmentation polygons or RLE; semantic "
                              "segmentation needs masks (use --task detect for boxes)")
    split, bases = split_from_name(json_path), _image_bases(json_path)
    cache = _cache_dir(json_path, ignore_index)
    fresh = not (cache / ".complete").exists()
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".masks-", dir=cache.parent)) if fresh else cache
    samples, problems = [], []
    try:
        for image in data["images"]:
            path = _resolve(image["file_name"], bases)
            if path is None:
                problems.append(PairProblem("missing_image", f"{json_path}:{image['file_name']}",
                                            f"{json_path}: image id {image['id']} file {image['file_name']!r} not found "
                                            f"(looked in {', '.join(str(b) for b in bases[:3])})"))
                continue
            mask_path = cache / f"{image['id']}.png"
            if fresh:
                save_mask(rasterize(image, anns_of.get(image["id"], []), class_of, ignore_index, json_path),
                          staging / mask_path.name)
            samples.append(MaskSample(path, mask_path, split))
        if fresh:
            # Build beside the target and rename: an interrupted run never leaves a half cache that looks complete.
            (staging / ".complete").touch()
            shutil.rmtree(cache, ignore_errors=True)
            staging.rename(cache)
    finally:
        if fresh:
            shutil.rmtree(staging, ignore_errors=True)
    return samples, ["background"] + [str(c.get("name", c["id"])) for c in categories], problems


def read_coco_masks(path: Path, ignore_index: int = 255):
    """A COCO .json (or a folder with annotations/*.json) -> (samples, class names, pairing problems)."""
    files = [path] if path.is_file() else sorted((path / "annotations").glob("*.json"))
    if path.is_file() and path.suffix.lower() != ".json":
        raise PixelforgeError(f"{path}: a file must be a COCO .json; give a folder for images/ + masks/ layouts")
    samples, problems, classes = [], [], None
    for json_path in files:
        found, names, issues = _read_one(json_path, ignore_index)
        if classes is not None and names != classes:
            raise PixelforgeError(f"{json_path}: categories differ from {files[0].name}'s; every split needs the same")
        classes, samples, problems = names, samples + found, problems + issues
    return samples, classes, problems
