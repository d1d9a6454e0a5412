"""Pascal VOC detection labels: read them into a `BoxSource` and write them back.

VOC (http://host.robots.ox.ac.uk/pascal/VOC/) keeps one XML per image in `Annotations/` (`<filename>`, `<size>`,
and per `<object>` a `<name>`, `<difficult>` and `<bndbox>` of 1-based pixel corners), the images in
`JPEGImages/`, and the splits as lists of file stems in `ImageSets/Main/{train,val,test}.txt`. Difficult objects
become crowd regions (COCO evaluation ignores both). Class names sorted alphabetically become ids 1..K.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from pixelforge.data.boxes.source import BoxImage, BoxSource, Problems, copy_images, empty_boxes, image_size
from pixelforge.data.images import IMAGE_EXTENSIONS, missing_reason
from pixelforge.errors import PixelforgeError


def _splits(root: Path) -> dict[str, str]:
    """stem -> split from ImageSets/Main/{train,val,test}.txt (`trainval` only when train/val are absent)."""
    folder = root / "ImageSets" / "Main"
    split_of: dict[str, str] = {}
    files = {split: folder / f"{split}.txt" for split in ("train", "val", "test")}
    if not files["train"].exists() and not files["val"].exists():
        files["train"] = folder / "trainval.txt"  # make_box_splits then draws val from it
    for split, file in files.items():
        if file.exists():
            for line in file.read_text().split("\n"):
                if line.strip():
                    split_of[line.split()[0]] = split
    return split_of


def _image_path(root: Path, xml: Path, filename: str | None) -> Path:
    folder = root / "JPEGImages"
    if filename and (folder / filename).exists():
        return folder / filename
    stem = Path(filename).stem if filename else xml.stem
    found = next((folder / f"{stem}{ext}" for ext in sorted(IMAGE_EXTENSIONS) if (folder / f"{stem}{ext}").exists()),
                 None)
    return found or folder / (filename or f"{xml.stem}.jpg")


def _number(node, tag: str) -> float | None:
    text = node.findtext(tag) if node is not None else None
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _parse(xml: Path, problems: Problems) -> dict | None:
    try:
        tree = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as exc:
        problems.add("bad_annotation", f"{xml}: not valid XML ({exc}); fix or re-export the annotation file")
        return None
    size = tree.find("size")
    width, height = _number(size, "width"), _number(size, "height")
    objects = []
    for index, obj in enumerate(tree.findall("object")):
        box = obj.find("bndbox")
        corners = [_number(box, tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
        name = (obj.findtext("name") or "").strip()
        if not name or None in corners:
            problems.add("bad_annotation", f"{xml}: object #{index} lacks a <name> or a complete <bndbox> "
                                           "(xmin, ymin, xmax, ymax); fix or delete that object")
            continue
        objects.append((name, corners, (obj.findtext("difficult") or "0").strip() == "1", f"{xml}: object #{index}"))
    return {"filename": tree.findtext("filename"), "width": width, "height": height, "objects": objects}


def read_voc(path: Path, problems: Problems | None = None) -> BoxSource:
    """Read a Pascal VOC folder (Annotations/, JPEGImages/, optional ImageSets/Main/) into a `BoxSource`.

    Raises:
        PixelforgeError: no XML files; with a strict `problems` also an XML without <size>, an object without
            name or box, or a missing image file, naming the XML file.
    """
    problems = problems or Problems(strict=True)
    root = Path(path)
    xmls = sorted((root / "Annotations").glob("*.xml"))
    if not xmls:
        raise PixelforgeError(f"{root / 'Annotations'}: no .xml files; a VOC dataset keeps one XML per image there")
    split_of = _splits(root)
    parsed = [(xml, _parse(xml, problems)) for xml in xmls]
    names = sorted({name for _, info in parsed if info for name, *_ in info["objects"]})
    id_of = {name: i + 1 for i, name in enumerate(names)}
    images = []
    for xml, info in parsed:
        if info is None:
            continue
        image_path = _image_path(root, xml, info["filename"])
        if not image_path.exists():
            problems.add("missing_file", f"{image_path}: {missing_reason(image_path)} (named by {xml}); put the file in "
                                         "JPEGImages/ or fix <filename>")
        width, height = info["width"], info["height"]
        if not width or not height:  # no <size>, or labelImg's 0 x 0: the image file knows it
            width, height = image_size(image_path) or (0, 0)
            if image_path.exists() and not width:
                problems.add("missing_size", f"{xml}: no <size> with <width> and <height>, and {image_path} cannot "
                                             "be opened to read it")
        if info["objects"]:
            corners = np.array([c for _, c, _, _ in info["objects"]], np.float32)
            corners[:, :2] -= 1  # VOC counts pixels from 1
            boxes = corners
            labels = np.array([id_of[n] for n, *_ in info["objects"]], np.int64)
            crowd = np.array([d for _, _, d, _ in info["objects"]], bool)
        else:
            boxes, labels, crowd = empty_boxes()
        images.append(BoxImage(image_path, int(width), int(height), boxes, labels, crowd, len(images) + 1,
                               split_of.get(xml.stem), refs=[r for *_, r in info["objects"]]))
    return BoxSource(images, {i: n for n, i in id_of.items()}, str(root))


def _text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def write_voc(source: BoxSource, out: str | Path) -> Path:
    """Write `source` as out/Annotations/*.xml + out/JPEGImages/ + out/ImageSets/Main/<split>.txt."""
    out = Path(out)
    targets = copy_images(source.images, out / "JPEGImages", by_split=False)
    (out / "Annotations").mkdir(parents=True, exist_ok=True)
    (out / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    stems: dict[str, list[str]] = {}
    for image, target in zip(source.images, targets):
        node = ET.Element("annotation")
        ET.SubElement(node, "folder").text = "JPEGImages"
        ET.SubElement(node, "filename").text = target.name
        size = ET.SubElement(node, "size")
        for tag, value in (("width", image.width), ("height", image.height), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        for box, label, crowd in zip(image.boxes.tolist(), image.labels, image.iscrowd):
            obj = ET.SubElement(node, "object")
            ET.SubElement(obj, "name").text = source.categories[int(label)]
            ET.SubElement(obj, "difficult").text = "1" if crowd else "0"
            bndbox = ET.SubElement(obj, "bndbox")
            for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), (box[0] + 1, box[1] + 1, box[2], box[3])):
                ET.SubElement(bndbox, tag).text = _text(value)
        ET.indent(node)
        ET.ElementTree(node).write(out / "Annotations" / f"{target.stem}.xml", encoding="utf-8")
        stems.setdefault(image.split or "train", []).append(target.stem)
    for split, names in stems.items():
        (out / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return out
