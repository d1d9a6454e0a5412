"""COCO detection / instance annotations: read them into a `BoxSource` and write them back.

COCO (https://cocodataset.org/#format-data) keeps one JSON per split with `images`, `annotations` (bbox
`[x, y, w, h]` in pixels, `iscrowd`, optional `segmentation` polygons or RLE) and `categories`. Category ids are
any integers, as in pycocotools and detectron2: the box tasks map them to contiguous labels 1..K in id order (label
0 is torchvision's background), so an id 0 (Roboflow exports list their dataset's name as category 0) is a category
like any other. Images are looked for where the common layouts keep them: `DIR/images/<file_name>` (pixelforge's
layout), beside the JSON, `DIR/<file_name>` and `DIR/train2017/<file_name>` (the official download).
"""

from __future__ import annotations

import json
from pathlib import Path, PureWindowsPath

import numpy as np

from pixelforge.data.boxes.source import BoxImage, BoxSource, Problems, copy_images, image_size, split_from_name
from pixelforge.data.images import missing_reason
from pixelforge.errors import PixelforgeError


def coco_files(path: Path) -> list[Path]:
    """The annotation JSONs of a COCO dataset: the file itself, DIR/annotations/*.json, or DIR/*.json."""
    if path.is_file():
        return [path]
    files = sorted((path / "annotations").glob("*.json")) or sorted(path.glob("*.json"))
    if not files:
        raise PixelforgeError(f"{path}: no COCO annotation files; expected {path}/annotations/<split>.json")
    return files


def load_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PixelforgeError(f"{file}: not valid JSON ({exc}); fix or re-export the annotation file") from None
    if not isinstance(data, dict):
        raise PixelforgeError(f"{file}: a COCO file must hold a JSON object with images, annotations, categories")
    missing = [key for key in ("images", "annotations", "categories") if key not in data]
    if missing:
        raise PixelforgeError(f"{file}: missing COCO key(s) {', '.join(map(repr, missing))}; a COCO file needs "
                              "'images', 'annotations' and 'categories' lists")
    not_lists = [key for key in ("images", "annotations", "categories") if not isinstance(data[key], list)]
    if not_lists:
        raise PixelforgeError(f"{file}: {', '.join(map(repr, not_lists))} must be a JSON list "
                              f"(got {type(data[not_lists[0]]).__name__})")
    return data


def _is_id(value) -> bool:
    """An integer id (JSON true/false are not ids, though Python counts them as ints)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _find_image(file: Path, file_name: str, split: str | None) -> Path:
    root = file.parent.parent if file.parent.name == "annotations" else file.parent
    stem = file.stem.replace("instances_", "")
    candidates = [root / "images" / file_name, file.parent / file_name, root / file_name, root / stem / file_name]
    if split:
        candidates.append(root / "images" / split / file_name)
    found = next((c for c in candidates if c.exists()), None)
    if found is None and "\\" in file_name:  # written on Windows: `images\1.jpg` is one name on POSIX
        return _find_image(file, PureWindowsPath(file_name).as_posix(), split)
    return found or candidates[0]


def _categories(file: Path, data: dict, problems: Problems) -> dict[int, str]:
    categories = {}
    for index, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise PixelforgeError(f"{file}: category #{index} lacks 'id' or 'name'; every category needs both")
        if not _is_id(cat["id"]):
            raise PixelforgeError(f"{file}: category #{index} has id {cat['id']!r}; category ids are integers")
        categories[int(cat["id"])] = str(cat["name"])
    return categories


def _annotation_box(file: Path, ann: dict, index: int, problems: Problems) -> list[float] | None:
    ann_name = f"annotation {ann['id']}" if "id" in ann else f"annotation #{index}"
    missing = [key for key in ("image_id", "category_id", "bbox") if key not in ann]
    if missing:
        problems.add("bad_annotation", f"{file}: {ann_name} lacks {', '.join(map(repr, missing))}; every "
                                       "annotation needs image_id, category_id and bbox [x, y, w, h]")
        return None
    bbox = ann["bbox"]
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
        problems.add("bad_annotation", f"{file}: {ann_name} has bbox {bbox!r}; it must be 4 numbers [x, y, w, h]")
        return None
    if not _is_id(ann["image_id"]):
        problems.add("bad_annotation", f"{file}: {ann_name} has image_id {ann['image_id']!r}; it must be an integer "
                                       "id from 'images'")
        return None
    if not _is_id(ann["category_id"]):
        problems.add("bad_annotation", f"{file}: {ann_name} has category_id {ann['category_id']!r}; it must be an "
                                       "integer id from 'categories'")
        return None
    return [float(v) for v in bbox]


def read_coco(path: Path, problems: Problems | None = None) -> BoxSource:
    """Read one COCO JSON or a folder of them (split from each file name) into a `BoxSource`.

    Raises:
        PixelforgeError: invalid JSON or missing keys (always); with a strict `problems` also an unknown category
            id, an annotation whose image id is not listed, or a missing image file, each naming the file and the
            annotation / image id.
    """
    problems = problems or Problems(strict=True)
    categories: dict[int, str] = {}
    images: list[BoxImage] = []
    for file in coco_files(path):
        data = load_json(file)
        split = split_from_name(file.name)
        for cat_id, name in _categories(file, data, problems).items():
            if categories.get(cat_id, name) != name:
                raise PixelforgeError(f"{file}: category id {cat_id} is {name!r} here but {categories[cat_id]!r} in "
                                      "another annotation file; use the same categories in every split")
            categories[cat_id] = name
        images += _read_file(file, data, split, set(categories), problems)
    return BoxSource(images, dict(sorted(categories.items())), str(path))


def _read_file(file: Path, data: dict, split: str | None, known: set[int], problems: Problems) -> list[BoxImage]:
    per_image: dict[int, list[dict]] = {}
    entries = {}
    for index, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            raise PixelforgeError(f"{file}: image #{index} lacks 'id' or 'file_name'; every image entry needs both")
        if not _is_id(entry["id"]) or not isinstance(entry["file_name"], str) or not entry["file_name"]:
            raise PixelforgeError(f"{file}: image #{index} has id {entry['id']!r} and file_name "
                                  f"{entry['file_name']!r}; the id is an integer and the file name a non-empty string")
        if entry["id"] in entries:  # its annotations could not tell the two apart: boxes on the wrong image
            problems.add("bad_annotation", f"{file}: image id {entry['id']} is listed twice "
                                           f"({entries[entry['id']]['file_name']!r} and {entry['file_name']!r}); "
                                           "give every image its own id")
            continue
        entries[entry["id"]] = entry
        per_image[entry["id"]] = []
    for index, ann in enumerate(data["annotations"]):
        bbox = _annotation_box(file, ann, index, problems) if isinstance(ann, dict) else None
        if bbox is None:
            continue
        ann_name = f"annotation {ann.get('id', '#' + str(index))}"
        if ann["image_id"] not in per_image:
            problems.add("missing_image_ref", f"{file}: {ann_name} points at image id {ann['image_id']}, which is "
                                              "not in 'images'; add the image entry or delete the annotation")
            continue
        if ann["category_id"] not in known:
            problems.add("unknown_category", f"{file}: {ann_name} has category_id {ann['category_id']}, which is "
                                             f"not in 'categories' ({sorted(known)}); fix the id or add the category")
            continue
        per_image[ann["image_id"]].append({**ann, "bbox": bbox, "_ref": f"{file}: {ann_name}"})
    images = []
    for image_id, entry in entries.items():
        image_path = _find_image(file, entry["file_name"], split)
        if not image_path.exists():
            problems.add("missing_file", f"{image_path}: {missing_reason(image_path)} (image id {image_id} in {file}); "
                                         "put the file there or fix its file_name")
        width, height = entry.get("width"), entry.get("height")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (width, height)):
            width, height = image_size(image_path) or (0, 0)
        anns = [{**a, "segmentation": _segmentation(a, int(height), int(width), problems)} for a in per_image[image_id]]
        images.append(_box_image(image_path, int(width), int(height), image_id, split, anns))
    return images


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _segmentation(ann: dict, height: int, width: int, problems: Problems) -> list | dict:
    """An annotation's polygons or RLE, checked: polygons under 3 points dropped (COCO itself has some, and
    pycocotools reads a 4-number one as a box; detectron2 drops them too), [] when none is left or there is none."""
    seg = ann.get("segmentation")
    if not seg:
        return []
    if isinstance(seg, list) and all(isinstance(p, list) and all(map(_is_number, p)) for p in seg):
        return [p for p in seg if len(p) >= 6]
    if isinstance(seg, dict) and isinstance(seg.get("counts"), (str, list)) and isinstance(seg.get("size"), list):
        if height and width and seg["size"] != [height, width]:
            problems.add("bad_annotation", f"{ann['_ref']} has an RLE of size {seg['size']} on a {width}x{height} "
                                           f"image; an RLE's size is the image's [height, width]: [{height}, {width}]")
            return []
        return seg
    problems.add("bad_annotation", f"{ann['_ref']} has segmentation {str(seg)[:60]!r}; it must be a list of polygons "
                                   "[[x1, y1, x2, y2, ...], ...] or an RLE {size, counts}")
    return []


def _box_image(path: Path, width: int, height: int, image_id: int, split, anns: list[dict]) -> BoxImage:
    xywh = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    labels = np.array([int(a["category_id"]) for a in anns], np.int64)
    iscrowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)
    segmentations = [a["segmentation"] for a in anns]
    has_segmentation = any(segmentations)
    return BoxImage(path, width, height, boxes, labels, iscrowd, image_id, split,
                    segmentations if has_segmentation else None, [a["_ref"] for a in anns])


def segmentation_area(segmentation, height: int, width: int) -> float:
    """Pixel area of a COCO polygon list or RLE, as COCO evaluation expects in an annotation's `area`."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        rles = mask_utils.frPyObjects(segmentation, height, width)
        return float(mask_utils.area(mask_utils.merge(rles)))
    if isinstance(segmentation.get("counts"), list):
        segmentation = mask_utils.frPyObjects(segmentation, height, width)
    return float(mask_utils.area(segmentation))


def coco_dict(images: list[BoxImage], categories: dict[int, str], image_root: Path | None = None) -> dict:
    """The COCO JSON object for `images`; file names relative to `image_root` when under it.

    Example:
        >>> from pixelforge.data.boxes.source import empty_boxes
        >>> coco_dict([BoxImage(Path("a.png"), 8, 6, *empty_boxes(), 1, "val")], {1: "cat"})["categories"]
        [{'id': 1, 'name': 'cat', 'supercategory': 'object'}]
    """
    entries, annotations = [], []
    for image in images:
        try:
            file_name = image.path.relative_to(image_root).as_posix() if image_root else image.path.as_posix()
        except ValueError:
            file_name = image.path.resolve().as_posix()
        entries.append({"id": int(image.image_id), "file_name": file_name, "width": int(image.width),
                        "height": int(image.height)})
        for k, (x1, y1, x2, y2) in enumerate(image.boxes.tolist()):
            ann = {"id": len(annotations) + 1, "image_id": int(image.image_id), "category_id": int(image.labels[k]),
                   "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                   "area": round(max(x2 - x1, 0) * max(y2 - y1, 0), 3), "iscrowd": int(image.iscrowd[k])}
            if image.segmentations is not None and image.segmentations[k]:
                ann["segmentation"] = image.segmentations[k]
                ann["area"] = segmentation_area(image.segmentations[k], image.height, image.width)
            annotations.append(ann)
    cats = [{"id": int(i), "name": name, "supercategory": "object"} for i, name in sorted(categories.items())]
    return {"images": entries, "annotations": annotations, "categories": cats}


def write_coco_annotations(images: list[BoxImage], categories: dict[int, str], root: Path) -> list[Path]:
    """Write `root/annotations/<split>.json` for images already under `root/images/`; returns the files."""
    written = []
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in sorted({image.split or "train" for image in images}):
        chosen = [image for image in images if (image.split or "train") == split]
        file = root / "annotations" / f"{split}.json"
        file.write_text(json.dumps(coco_dict(chosen, categories, root / "images")))
        written.append(file)
    return written


def write_coco(source: BoxSource, out: str | Path) -> Path:
    """Write `source` in pixelforge's COCO layout: out/images/<split>/<name> + out/annotations/<split>.json."""
    from dataclasses import replace

    out = Path(out)
    targets = copy_images(source.images, out / "images")
    moved = [replace(image, path=target) for image, target in zip(source.images, targets)]
    write_coco_annotations(moved, source.categories, out)
    return out
