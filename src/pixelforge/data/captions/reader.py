"""Reading captioned images: COCO-captions JSON (one file, or a folder with annotations/{train,val,test}.json) and
captions.csv (`path,caption[,split]`, one row per caption).

Everything becomes a `CaptionSource`: images with their id, file, split and captions. COCO file names are looked
up beside the JSON, under the dataset's images/ folder (DIR/images/ for DIR/annotations/x.json), and under DIR.
What the data check reports (captions without images, images without captions, empty captions) is kept here, not
silently dropped, so `data check` and training see the same data.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from pixelforge.data.sources import SPLIT_ALIASES, csv_image_path, csv_text, utf8_text
from pixelforge.errors import PixelforgeError

SPLITS = ("train", "val", "test")


@dataclass
class CaptionedImage:
    id: int
    path: str
    split: str | None
    captions: list[str] = field(default_factory=list)
    objects: list[dict] | None = None  # the built-in set's scene description, for the attribute-match metric


@dataclass
class CaptionSource:
    origin: str
    images: list[CaptionedImage]
    orphan_captions: list[tuple[str, object]] = field(default_factory=list)  # (file, image_id) with no such image
    missing_files: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[CaptionedImage]:
        return [i for i in self.images if i.split == name and i.captions]

    @property
    def has_splits(self) -> bool:
        return any(i.split for i in self.images)


def read_captions(data: str | Path) -> CaptionSource:
    """A folder (annotations/*.json, captions.csv or captions.json), one COCO-captions JSON, or a captions CSV."""
    path = Path(data)
    if not path.exists():
        raise PixelforgeError(f"{path}: not found; give a COCO-captions JSON, a captions.csv, or a folder with "
                              f"annotations/{{train,val,test}}.json")
    if path.is_dir():
        jsons = [path / "annotations" / f"{s}.json" for s in SPLITS if (path / "annotations" / f"{s}.json").exists()]
        if jsons:
            return _merge(str(path), [read_coco_captions(j, split=j.stem) for j in jsons])
        if _coco_split_files(path):
            return _merge(str(path), [read_coco_captions(j, split=s) for j, s in _coco_split_files(path)])
        if (path / "captions.csv").exists():
            return read_captions_csv(path / "captions.csv")
        # The docs' one-file COCO layout is named captions.json; a folder holding it is read like the CSV's folder.
        if (path / "captions.json").exists():
            return read_coco_captions(path / "captions.json")
        raise PixelforgeError(f"{path}: no annotations/train.json (or COCO's captions_train2017.json), captions.json "
                              f"(COCO captions) or captions.csv in this folder")
    if path.suffix.lower() == ".json":
        return read_coco_captions(path)
    if path.suffix.lower() == ".csv":
        return read_captions_csv(path)
    raise PixelforgeError(f"{path}: not a .json (COCO captions) or .csv (path,caption) file")


def _merge(origin: str, sources: list[CaptionSource]) -> CaptionSource:
    ids = [i.id for s in sources for i in s.images]
    if len(ids) != len(set(ids)):
        raise PixelforgeError(f"{origin}: an image id appears in two split files; ids must be unique across splits")
    return CaptionSource(origin, [i for s in sources for i in s.images],
                         [o for s in sources for o in s.orphan_captions], [m for s in sources for m in s.missing_files])


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(utf8_text(path, "UTF-8 JSON"))
    except json.JSONDecodeError as exc:
        raise PixelforgeError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise PixelforgeError(f"{path}: not COCO captions (needs 'images' and 'annotations' lists)")
    return data


def _image_roots(json_path: Path) -> list[Path]:
    parent = json_path.parent
    roots = [parent, parent / "images"]
    if parent.name == "annotations":
        # COCO's own layout: annotations/captions_train2017.json names files in train2017/ beside annotations/
        folder = json_path.stem.removeprefix("captions_")
        roots += [parent.parent / "images", parent.parent, parent.parent / folder, parent.parent / "images" / folder]
    return roots


def _coco_split_files(root: Path) -> list[tuple[Path, str]]:
    """COCO's own file names, annotations/captions_{train,val}2017.json (or 2014), with the split each holds."""
    found = []
    for path in sorted((root / "annotations").glob("captions_*.json")):
        split = next((s for s in SPLITS if path.stem.removeprefix("captions_").startswith(s)), None)
        if split:
            found.append((path, split))
    return found


def read_coco_captions(path: str | Path, split: str | None = None) -> CaptionSource:
    """One COCO-captions JSON: `images` [{id, file_name}] and `annotations` [{image_id, caption}]."""
    path = Path(path)
    data = _load_json(path)
    roots = _image_roots(path)
    images: dict = {}
    missing = []
    listed: dict = {}  # id -> file name, found or not
    for entry in data["images"]:
        _check_image_entry(path, entry)
        first = listed.setdefault(entry["id"], entry["file_name"])
        if first != entry["file_name"]:  # the later file silently took the id, and the first file's captions
            raise PixelforgeError(f"{path}: image id {entry['id']!r} is listed for two files ({first}, "
                                  f"{entry['file_name']}); give each image its own id")
        names = [entry["file_name"], PureWindowsPath(entry["file_name"]).as_posix()]  # a Windows tool's `a\b.jpg` too
        found = next((r / name for name in names for r in roots if (r / name).is_file()), None)
        if found is None:
            missing.append(str(roots[0] / entry["file_name"]))
            continue
        images[entry["id"]] = CaptionedImage(entry["id"], str(found), split or entry.get("split"),
                                             objects=entry.get("objects"))
    orphans = []
    for ann in data["annotations"]:
        _check_annotation(path, ann)
        image = images.get(ann["image_id"])
        if image is None:
            orphans.append((str(path), ann["image_id"]))
        else:
            image.captions.append(ann["caption"])
    return CaptionSource(str(path), list(images.values()), orphans, missing)


def _is_id(value) -> bool:
    """COCO ids are numbers (some tools write strings); a list or object cannot key an image, and a bool is a typo."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _check_image_entry(path: Path, entry) -> None:
    if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
        raise PixelforgeError(f"{path}: an image entry lacks 'id' or 'file_name' ({str(entry)[:80]})")
    if not _is_id(entry["id"]) or not isinstance(entry["file_name"], str) or not entry["file_name"]:
        raise PixelforgeError(f"{path}: an image entry needs a number 'id' and a file name string 'file_name' "
                              f"({str(entry)[:80]})")


def _check_annotation(path: Path, ann) -> None:
    if not isinstance(ann, dict) or "caption" not in ann or "image_id" not in ann:
        raise PixelforgeError(f"{path}: an annotation lacks 'image_id' or 'caption' ({str(ann)[:80]})")
    # str() made a null caption the sentence "none" and a number a one-word caption
    if not _is_id(ann["image_id"]) or not isinstance(ann["caption"], str):
        raise PixelforgeError(f"{path}: an annotation needs a number 'image_id' and a text 'caption' "
                              f"({str(ann)[:80]})")


def read_captions_csv(path: str | Path) -> CaptionSource:
    """`path,caption[,split]` rows (a header row names the columns); paths relative to the CSV's folder."""
    path = Path(path)
    with io.StringIO(csv_text(path), newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"path", "caption"} <= set(rows[0]):
        raise PixelforgeError(f"{path}: needs a header with columns path,caption (optional: split)")
    by_path: dict[str, CaptionedImage] = {}
    missing = []
    for number, row in enumerate(rows, start=2):  # the header is line 1
        if not (row["path"] or "").strip():  # a short row (None) was a TypeError traceback
            raise PixelforgeError(f"{path}: row {number} has no path; each row needs a path and a caption, in the "
                                  f"header's order")
        file = csv_image_path(row["path"], path)
        if not file.is_file():
            missing.append(str(file))
            continue
        split = (row.get("split") or "").strip() or None
        # "Train", "VAL", "validation" are read as the classification CSV reads them (data/sources.py), not refused.
        if split is not None and split.lower() not in SPLIT_ALIASES:
            raise PixelforgeError(f"{path}: split {split!r} for {row['path']}; use train, val or test")
        split = split and SPLIT_ALIASES[split.lower()]
        image = by_path.setdefault(str(file), CaptionedImage(len(by_path) + 1, str(file), split))
        if image.split != split:  # the first row's split won: the image's other captions changed split unseen
            raise PixelforgeError(f"{path}: {row['path']} has rows in split {image.split or '(none)'} and "
                                  f"{split or '(none)'}; an image's captions belong to one split")
        image.captions.append(row["caption"] or "")
    return CaptionSource(str(path), list(by_path.values()), [], sorted(set(missing)))


def assign_splits(source: CaptionSource, val_fraction: float, test_fraction: float, seed: int) -> CaptionSource:
    """Give images without a split one (by image, never splitting an image's captions), when none has any."""
    import numpy as np

    if source.has_splits:
        return source
    order = np.random.default_rng(seed).permutation(len(source.images))
    n_val, n_test = int(round(val_fraction * len(order))), int(round(test_fraction * len(order)))
    for rank, index in enumerate(order):
        source.images[index].split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return source
