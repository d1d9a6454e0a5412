"""`pixelforge data check --task detect`: everything worth knowing about a detection dataset, on one screen.

Counts (images, boxes, per class and split, crowd regions, images without objects), the box-size mix by COCO's
area thresholds (small < 32², medium < 96², large) and a histogram of box sizes, and every problem with the file and
annotation id or line it is in: boxes reaching outside the image, boxes with zero or negative area, unknown
category ids, annotations for images that are not listed, image files missing, unreadable or of another size
than annotated, malformed annotations. The readers run in lenient mode, so a broken dataset is described, never
crashed on; a file too broken to read at all is reported as such.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pixelforge.data.check import print_heading, print_tiny_images, tiny_images, verdict
from pixelforge.data.boxes.source import BoxImage, Problems, detect_format, image_size, read_boxes
from pixelforge.errors import PixelforgeError

SMALL, MEDIUM = 32**2, 96**2  # COCO's area thresholds
SIZE_EDGES = [0, 8, 16, 32, 64, 96, 128, 256, 512, 1024]  # box side sqrt(w*h) in pixels
_TOLERANCE = 1.0  # a pixel past the border is rounding, not a mistake


@dataclass
class BoxCheckReport:
    origin: str
    format: str
    images: int = 0
    annotations: int = 0
    crowd: int = 0
    per_class: dict[str, int] = field(default_factory=dict)
    per_split: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> boxes
    images_per_split: dict[str, int] = field(default_factory=dict)
    empty_images: int = 0  # allowed (negatives), just counted
    size_buckets: dict[str, int] = field(default_factory=dict)
    size_histogram: dict[str, list] = field(default_factory=dict)  # {"edges": [...], "counts": [...]}
    fatal: list[str] = field(default_factory=list)
    out_of_image: list[str] = field(default_factory=list)
    degenerate: list[str] = field(default_factory=list)
    unknown_category: list[str] = field(default_factory=list)
    missing_image_ref: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    size_mismatch: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    img_size: int | None = None
    tiny_images: list[str] = field(default_factory=list)  # shorter side under img_size / 4: a warning, not a problem

    PROBLEMS = ("fatal", "out_of_image", "degenerate", "unknown_category", "missing_image_ref", "missing_files",
                "unreadable", "size_mismatch", "malformed")

    @property
    def problem_count(self) -> int:
        return sum(len(getattr(self, name)) for name in self.PROBLEMS)

    @property
    def error_count(self) -> int:
        """The problems that stop training, leave images out or misplace boxes; a box outside the image (clipped)
        or of zero area (nothing to learn) is not, so only `--strict` fails on those."""
        return self.problem_count - len(self.out_of_image) - len(self.degenerate)

    def to_json(self) -> dict:
        return {**asdict(self), "problem_count": self.problem_count, "error_count": self.error_count}


def _inspect(image: BoxImage) -> str | None:
    """Decode `image` fully (catches truncated files); a problem line, or None when it is fine."""
    from PIL import Image

    try:
        with Image.open(image.path) as img:
            img.load()
    except Exception as exc:  # noqa: BLE001 - every decoder failure is reported the same way
        return f"unreadable:{image.path}: cannot decode ({type(exc).__name__}: {exc})"
    size = image_size(image.path)
    if size and image.width and image.height and tuple(size) != (image.width, image.height):
        return (f"size:{image.path}: annotated as {image.width}x{image.height} but the file is {size[0]}x{size[1]}; "
                "boxes would land in the wrong place: fix width/height")
    return None


def _box_problems(image: BoxImage, report: BoxCheckReport) -> None:
    for k, (x1, y1, x2, y2) in enumerate(image.boxes.tolist()):
        ref = image.refs[k] if image.refs else f"{image.path}: box #{k}"
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            report.degenerate.append(f"{ref}: box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] (XYXY) has zero or negative "
                                     "area; fix or delete it (training drops it)")
        elif (x1 < -_TOLERANCE or y1 < -_TOLERANCE or x2 > image.width + _TOLERANCE
              or y2 > image.height + _TOLERANCE):
            report.out_of_image.append(f"{ref}: box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] (XYXY) reaches outside the "
                                       f"{image.width}x{image.height} image ({image.path.name}); training clips it")


def _sizes(images: list[BoxImage], report: BoxCheckReport) -> None:
    boxes = np.concatenate([image.boxes for image in images]) if images else np.zeros((0, 4), np.float32)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    report.size_buckets = {"small": int((area < SMALL).sum()), "medium": int(((area >= SMALL) & (area < MEDIUM)).sum()),
                           "large": int((area >= MEDIUM).sum())}
    edges = [*SIZE_EDGES, max(float(np.sqrt(area).max(initial=0)) + 1, SIZE_EDGES[-1] + 1)]
    counts, _ = np.histogram(np.sqrt(area), bins=edges)
    report.size_histogram = {"edges": [round(e, 1) for e in edges], "counts": counts.tolist()}


def check_boxes(path: str | Path, workers: int = 4, img_size: int | None = None) -> BoxCheckReport:
    """Inspect the detection dataset at `path` (COCO / YOLO / VOC) and return the findings; never raises on bad data.

    Example:
        >>> report = check_boxes("shapes_detect")  # doctest: +SKIP
        >>> report.images, report.problem_count  # doctest: +SKIP
        (360, 0)
    """
    problems = Problems(strict=False)
    try:
        report = BoxCheckReport(origin=str(path), format=detect_format(Path(path)))
        source = read_boxes(path, problems)
    except PixelforgeError as exc:
        return BoxCheckReport(origin=str(path), format="unknown", fatal=[str(exc)])
    kinds = problems.by_kind
    report.unknown_category = kinds["unknown_category"]
    report.missing_image_ref = kinds["missing_image_ref"]
    report.missing_files = kinds["missing_file"]
    report.unreadable = kinds["unreadable_file"]
    report.malformed = kinds["bad_annotation"] + kinds["bad_line"] + kinds["out_of_bounds"] + kinds["missing_size"]
    present = [image for image in source.images if image.path.exists()]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for finding in pool.map(_inspect, present):
            if finding:
                kind, message = finding.split(":", 1)
                (report.unreadable if kind == "unreadable" else report.size_mismatch).append(message)
    per_class, per_split = Counter(), defaultdict(Counter)
    for image in source.images:
        _box_problems(image, report)
        names = [source.categories.get(int(c), f"id {int(c)}") for c in image.labels]
        per_class.update(names)
        per_split[image.split or "unsplit"].update(names)
    report.images = len(source.images)
    report.annotations = sum(len(image.boxes) for image in source.images)
    report.crowd = int(sum(image.iscrowd.sum() for image in source.images))
    report.per_class = {name: per_class.get(name, 0) for name in source.classes}
    order = ["train", "val", "test", "unsplit"].index
    report.per_split = {split: dict(per_split[split]) for split in sorted(per_split, key=order)}
    report.images_per_split = dict(sorted(Counter(image.split or "unsplit" for image in source.images).items(),
                                          key=lambda item: order(item[0])))
    report.empty_images = sum(1 for image in source.images if len(image.boxes) == 0)
    _sizes(source.images, report)
    report.img_size = img_size
    report.tiny_images = tiny_images([(image.path, (image.width, image.height)) for image in source.images
                                      if image.width and image.height], img_size)
    return report


def print_box_report(report: BoxCheckReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    splits = list(report.images_per_split)
    table = Table("class", *splits, "total")
    for name, total in report.per_class.items():
        table.add_row(name, *(str(report.per_split.get(s, {}).get(name, 0)) for s in splits), str(total))
    table.add_row("[dim]images[/dim]", *(str(report.images_per_split[s]) for s in splits), str(report.images))
    if report.images:
        print_heading(console, f"{report.origin} ({report.format}): {report.images} images, {report.annotations} boxes")
        console.print(table)
        console.print(f"images without objects: {report.empty_images} (allowed); crowd regions: {report.crowd}")
        b = report.size_buckets
        console.print(f"box sizes (COCO area): small {b['small']}, medium {b['medium']}, large {b['large']}")
        edges, counts = report.size_histogram["edges"], report.size_histogram["counts"]
        console.print("box side sqrt(w*h) px: " + ", ".join(
            f"{edges[i]:g}-{edges[i + 1]:g}: {n}" for i, n in enumerate(counts) if n))
    sections = [("unreadable annotations", report.fatal), ("malformed annotations", report.malformed),
                ("unknown category ids", report.unknown_category),
                ("annotations for images not listed", report.missing_image_ref),
                ("image files missing", report.missing_files), ("image files unreadable", report.unreadable),
                ("image size differs from the annotation", report.size_mismatch),
                ("boxes outside the image", report.out_of_image),
                ("boxes with zero or negative area", report.degenerate)]
    for title, items in sections:
        style = "red" if items else "green"
        console.print(f"[{style}]{title}: {len(items)}[/{style}]")
        for item in items[:20]:
            console.print(f"  {item}", markup=False, soft_wrap=True)  # unwrapped: paths stay copyable
        if len(items) > 20:
            console.print(f"  ... and {len(items) - 20} more")
    print_tiny_images(console, report.tiny_images, report.img_size)
    console.print(verdict(report))
