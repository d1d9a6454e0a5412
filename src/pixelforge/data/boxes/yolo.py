"""YOLO detection labels (the Ultralytics layout): read them into a `BoxSource` and write them back.

A `data.yaml` names the classes (`names:` as a list or `{index: name}`) and the image folders of each split
(`train:`, `val:`, `test:`; relative to `path:` when given, else to the yaml's folder; a `../x` that is not there
is looked for as `x`, as Ultralytics does for Roboflow's exports). Each image's labels are in the mirror path
with `images` replaced by `labels` and the suffix `.txt`, one object a line: `class cx cy w h`, normalised by the
image size; a line with more than 4 numbers is a polygon (YOLO segment format): its bounds become the box and the
polygon the object's outline, so `--task instance` learns masks from it as from COCO polygons. An image without a
label file has no objects. Class index i becomes COCO category id i + 1.
"""

from __future__ import annotations

from pathlib import Path, PureWindowsPath

import numpy as np
import yaml

from pixelforge.data.boxes.source import (BoxImage, BoxSource, Problems, SPLIT_ALIASES, copy_images, empty_boxes,
                                          image_size)
from pixelforge.data.images import is_image_file, list_broken_links, list_images, missing_reason
from pixelforge.errors import PixelforgeError

_TOLERANCE = 1e-6  # exporters write 1.0000001 for boxes touching the border


def yaml_file(path: Path) -> Path:
    if path.is_file():
        return path
    candidates = [path / "data.yaml", *sorted(path.glob("*.yaml")), *sorted(path.glob("*.yml"))]
    return next((c for c in candidates if c.exists()), path / "data.yaml")


def _names(file: Path, cfg: dict) -> list[str]:
    names = cfg.get("names")
    if isinstance(names, dict):
        if not all(isinstance(k, int) or str(k).isdigit() for k in names):
            raise PixelforgeError(f"{file}: names must map class indices to names ({{0: cat, 1: dog}}), got keys "
                                  f"{list(names)[:5]}")
        keys = sorted(int(k) for k in names)
        if keys != list(range(len(keys))):
            raise PixelforgeError(f"{file}: names must be numbered 0..{len(keys) - 1} without gaps, got {keys}")
        return [str(names[k] if k in names else names[str(k)]) for k in keys]
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    raise PixelforgeError(f"{file}: no class names; add `names: [cat, dog, ...]` (or `names: {{0: cat, ...}}`)")


def _split_images(file: Path, base: Path, key: str, value, problems: Problems) -> list[Path]:
    images = []
    for entry in value if isinstance(value, list) else [value]:
        target = (base / str(entry)).resolve()
        if not target.exists() and str(entry).startswith("../"):
            # Roboflow writes `train: ../train/images` beside train/; Ultralytics then drops the `../`, as we do.
            target = (base / str(entry)[3:]).resolve()
        if target.is_dir():
            images += list_images(target)
            for link in list_broken_links(target):  # invisible to list_images: reported, never silently dropped
                problems.note("missing_file", f"{link}: {missing_reason(link)}; left out")
        elif target.is_file() and target.suffix == ".txt":  # a list of image paths, relative to `path:`
            lines = [line.strip() for line in target.read_text().splitlines() if line.strip()]
            # A list written on Windows (`images\train\1.jpg`) is read with its backslashes as separators.
            lines = [line if (base / line).exists() else PureWindowsPath(line).as_posix() for line in lines]
            images += [(base / line).resolve() for line in lines if is_image_file(Path(line))]
        else:
            raise PixelforgeError(f"{file}: {key}: {target} does not exist; point it at a folder of images "
                                  "(relative to `path:` or the yaml)")
    return images


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last `images` folder in the path becomes `labels`, the suffix `.txt`."""
    parts = list(image.parts)
    if "images" in parts:
        index = len(parts) - 1 - parts[::-1].index("images")
        parts[index] = "labels"
        return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _parse_line(file: Path, number: int, line: str, n_classes: int, problems: Problems):
    where = f"{file}:{number}"
    parts = line.split()
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(values) < 5 or (len(values) > 5 and len(values) % 2 == 0) or values[0] != int(values[0]):
        problems.add("bad_line", f"{where}: malformed label line {line.strip()!r}; expected `class cx cy w h` "
                                 "(class an integer, the rest numbers in [0, 1])")
        return None
    cls, coords = int(values[0]), np.array(values[1:], np.float64)
    if not 0 <= cls < n_classes:
        problems.add("unknown_category", f"{where}: class index {cls} is not in names (0..{n_classes - 1}); "
                                         "fix the label or add the class to data.yaml")
        return None
    if coords.min() < -_TOLERANCE or coords.max() > 1 + _TOLERANCE:
        problems.add("out_of_bounds", f"{where}: coordinates {coords.round(4).tolist()} outside [0, 1]; YOLO "
                                      "labels are normalised by the image width and height")
        return None
    if len(coords) == 4:
        cx, cy, w, h = coords
        return cls, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], None
    xs, ys = coords[0::2], coords[1::2]
    return cls, [xs.min(), ys.min(), xs.max(), ys.max()], coords


def _read_labels(image: Path, size: tuple[int, int], n_classes: int, problems: Problems):
    file = label_path(image)
    boxes, labels, polygons, refs = [], [], [], []
    if file.exists():
        for number, line in enumerate(file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parsed = _parse_line(file, number, line, n_classes, problems)
            if parsed:
                labels.append(parsed[0] + 1)
                boxes.append(parsed[1])
                polygons.append(parsed[2])
                refs.append(f"{file}:{number}")
    if not boxes:
        return (*empty_boxes(), refs, None)
    scale = np.array([size[0], size[1]] * 2, np.float64)
    # COCO's polygon form in pixels, [] for a box line (no outline); None when the image has no polygon at all.
    outlines = [[(p * np.resize(scale[:2], len(p))).round(2).tolist()] if p is not None else [] for p in polygons]
    return ((np.array(boxes) * scale).astype(np.float32), np.array(labels, np.int64), np.zeros(len(labels), bool),
            refs, outlines if any(outlines) else None)


def read_yolo(path: Path, problems: Problems | None = None) -> BoxSource:
    """Read a YOLO dataset (its data.yaml, or the folder holding it) into a `BoxSource`.

    Raises:
        PixelforgeError: a missing or invalid yaml, no names, a split folder that does not exist; with a strict
            `problems` also a malformed line, an unknown class index or coordinates outside [0, 1], naming the
            label file and line number.
    """
    problems = problems or Problems(strict=True)
    file = yaml_file(path)
    try:
        cfg = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PixelforgeError(f"{file}: cannot read the YOLO data.yaml ({exc})") from None
    if not isinstance(cfg, dict):
        raise PixelforgeError(f"{file}: a YOLO data.yaml must map names and train/val/test image folders")
    names = _names(file, cfg)
    base = (file.parent / str(cfg["path"])) if cfg.get("path") else file.parent
    images = []
    for key in ("train", "val", "valid", "test"):
        if not cfg.get(key):
            continue
        for image_path in _split_images(file, base, key, cfg[key], problems):
            size = image_size(image_path)
            if size is None:
                problems.note("unreadable_file", f"{image_path}: cannot open the image to read its size")
                continue
            boxes, labels, crowd, refs, outlines = _read_labels(image_path, size, len(names), problems)
            images.append(BoxImage(image_path, size[0], size[1], boxes, labels, crowd, len(images) + 1,
                                   SPLIT_ALIASES[key], segmentations=outlines, refs=refs))
    if not any(cfg.get(key) for key in ("train", "val", "valid", "test")):
        raise PixelforgeError(f"{file}: no image folders; add `train: images/train` and `val: images/val`")
    return BoxSource(images, {i + 1: name for i, name in enumerate(names)}, str(path))


def one_polygon(outline) -> list | None:
    """An outline YOLO's segment format can hold: one polygon of 3 or more points (not an RLE, not several parts)."""
    if isinstance(outline, list) and len(outline) == 1 and len(outline[0]) >= 6 and len(outline[0]) % 2 == 0:
        return outline[0]
    return None


def write_yolo(source: BoxSource, out: str | Path) -> Path:
    """Write `source` as out/data.yaml + out/images/<split>/ + out/labels/<split>/*.txt.

    Categories become class indices in id order. An object outlined by one polygon is written in YOLO's segment
    format (its polygon), any other as its box: YOLO has no RLE and one polygon an object. Crowd regions and boxes
    with no area inside the image are left out: YOLO has no way to say "ignore this region", and our reader would
    reject coordinates outside [0, 1].
    """
    out = Path(out)
    ids = sorted(source.categories)
    index_of = {cid: i for i, cid in enumerate(ids)}
    targets = copy_images(source.images, out / "images")
    for image, target in zip(source.images, targets):
        lines = []
        size = np.array([image.width, image.height] * 2, np.float64)
        outlines = image.segmentations or [None] * len(image.labels)
        for box, label, crowd, outline in zip(image.boxes.astype(np.float64), image.labels, image.iscrowd, outlines):
            x1, y1, x2, y2 = np.clip(box, 0, size) / size
            if crowd or x2 <= x1 or y2 <= y1:
                continue
            polygon = one_polygon(outline)
            if polygon is not None:  # YOLO segment format: the outline, normalised
                frame = np.resize(size[:2], len(polygon))  # width, height, width, height...
                points = np.clip(np.array(polygon, np.float64), 0, frame) / frame
                lines.append(f"{index_of[int(label)]} " + " ".join(f"{v:.6f}" for v in points))
                continue
            lines.append(f"{index_of[int(label)]} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}")
        label_file = label_path(target)
        label_file.parent.mkdir(parents=True, exist_ok=True)
        label_file.write_text("".join(line + "\n" for line in lines))
    splits = sorted({image.split or "train" for image in source.images}, key=["train", "val", "test"].index)
    # No `path:` key: Ultralytics would resolve a relative one against its own datasets folder.
    cfg = {**{split: f"images/{split}" for split in splits}, "names": [source.categories[i] for i in ids]}
    (out / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out
