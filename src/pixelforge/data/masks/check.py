"""`pixelforge data check --task segment`: what is wrong with a segmentation dataset, on one screen, never a crash.

Counts per split; images without masks and masks without images; unreadable files; colour masks that hold no class
ids; masks whose size differs from their image; class ids outside the declared classes; masks that are all
background; masks saved as JPEG; binary masks drawn as 0/255 (objects in the ignore value); pixel frequency of each class (class imbalance is the rule in segmentation, and the reason for
`class_weights` and dice losses); and the images' modes, bit depths and channel counts.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from pixelforge.data.check import print_heading, print_tiny_images, tiny_images, verdict
from pixelforge.data.images import ImageReadError
from pixelforge.data.masks.images import MaskFormatError, load_mask, probe_image
from pixelforge.data.masks.source import MaskSample, scan_masks


@dataclass
class MaskCheckReport:
    origin: str
    total: int
    classes: list[str]
    ignore_index: int
    per_split: dict[str, int]
    class_pixel_fraction: dict[str, float] = field(default_factory=dict)  # over labelled (non-ignore) pixels
    class_image_count: dict[str, int] = field(default_factory=dict)  # images in which the class appears
    ignore_fraction: float = 0.0
    missing_masks: list[str] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    not_single_channel: list[str] = field(default_factory=list)
    size_mismatch: list[str] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)
    empty_masks: list[str] = field(default_factory=list)  # all background: legal, but worth a look
    lossy_masks: list[str] = field(default_factory=list)  # saved as JPEG: class ids change along every edge
    no_objects: list[str] = field(default_factory=list)  # every mask only background and ignore: 0/255 binary masks
    broken_links: list[str] = field(default_factory=list)  # symbolic links that point nowhere (left out)
    single_class: list[str] = field(default_factory=list)  # the one class, when there is only one: training refuses
    img_size: int | None = None
    tiny_images: list[str] = field(default_factory=list)  # shorter side under img_size / 4: a warning
    modes: dict[str, int] = field(default_factory=dict)
    bit_depths: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)

    @property
    def problem_count(self) -> int:
        return (len(self.missing_masks) + len(self.missing_images) + len(self.unreadable)
                + len(self.not_single_channel) + len(self.size_mismatch) + len(self.unknown_ids)
                + len(self.broken_links) + len(self.single_class) + len(self.lossy_masks) + len(self.no_objects))

    @property
    def error_count(self) -> int:
        """Every mask problem stops training or leaves a pair out (empty masks are legal: not problems)."""
        return self.problem_count

    def to_json(self) -> dict:
        return {**asdict(self), "problem_count": self.problem_count, "error_count": self.error_count}


def _inspect(sample: MaskSample, num_classes: int, ignore_index: int) -> dict:
    info = {"image": str(sample.image), "mask": str(sample.mask), "mode": None, "depth": None, "channels": None,
            "size": None,
            "counts": None, "error": None, "kind": None}
    try:
        with Image.open(sample.image) as img:
            size, info["mode"] = img.size, img.mode
            info["size"] = size
            img.load()  # a full decode catches truncated files that the header alone lets through
        info["channels"], info["depth"] = probe_image(sample.image)
    except Exception as exc:  # noqa: BLE001 - every decoder failure is reported the same way
        info["kind"], info["error"] = "unreadable", f"{sample.image}: {type(exc).__name__}: {exc}"
        return info
    try:
        mask = load_mask(sample.mask)
    except MaskFormatError as exc:
        info["kind"], info["error"] = "not_single_channel", str(exc)
        return info
    except ImageReadError as exc:
        info["kind"], info["error"] = "unreadable", str(exc)
        return info
    except Exception as exc:  # noqa: BLE001 - a mask no decoder can read is reported, never fatal
        info["kind"], info["error"] = "unreadable", f"{sample.mask}: {type(exc).__name__}: {exc}"
        return info
    if mask.shape != (size[1], size[0]):
        info["kind"] = "size_mismatch"
        info["error"] = f"{sample.mask}: mask {mask.shape[1]}x{mask.shape[0]} but image {size[0]}x{size[1]}"
    ids, counts = np.unique(mask, return_counts=True)
    info["counts"] = dict(zip(ids.tolist(), counts.tolist()))
    outside = [i for i in ids.tolist() if (i < 0 or i >= num_classes) and i != ignore_index]
    if outside and info["kind"] is None:
        info["kind"] = "unknown_ids"
        info["error"] = (f"{sample.mask}: class id(s) {', '.join(map(str, outside[:8]))} outside 0..{num_classes - 1} "
                         f"(ignore {ignore_index})")
    return info


def check_masks(path, ignore_index: int = 255, num_classes: int | None = None, workers: int = 4,
                img_size: int | None = None) -> MaskCheckReport:
    """Inspect every image/mask pair of a segmentation dataset (any layout `read_masks` accepts).

    Example:
        >>> report = check_masks("data/cells")  # doctest: +SKIP
        >>> report.problem_count, report.class_pixel_fraction  # doctest: +SKIP
    """
    source, problems = scan_masks(path, ignore_index, num_classes, strict_classes=False)
    num_classes = len(source.classes)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        infos = list(pool.map(lambda s: _inspect(s, num_classes, ignore_index), source.samples))
    report = MaskCheckReport(origin=source.origin, total=len(source.samples), classes=source.classes,
                             ignore_index=ignore_index,
                             per_split=dict(sorted(Counter(s.split or "unsplit" for s in source.samples).items())),
                             single_class=list(source.classes) if len(source.classes) < 2 else [],
                             img_size=img_size,
                             tiny_images=tiny_images([(i["image"], i["size"]) for i in infos], img_size))
    for problem in problems:
        {"missing_mask": report.missing_masks, "missing_image": report.missing_images,
         "broken_link": report.broken_links}.get(problem.kind, report.unreadable).append(problem.message)
    pixels: Counter = Counter()
    images_with: Counter = Counter()
    for info in infos:
        if info["kind"]:
            getattr(report, info["kind"]).append(info["error"])
        if info["mode"]:
            report.modes[info["mode"]] = report.modes.get(info["mode"], 0) + 1
        if info["depth"]:
            key = f"{info['depth']}-bit"
            report.bit_depths[key] = report.bit_depths.get(key, 0) + 1
            report.channels[str(info["channels"])] = report.channels.get(str(info["channels"]), 0) + 1
        if info["counts"] is not None:
            pixels.update(info["counts"])
            images_with.update(info["counts"].keys())
            if not set(info["counts"]) - {0, ignore_index}:
                report.empty_masks.append(info["mask"])
    labelled = sum(n for i, n in pixels.items() if i != ignore_index)
    total = labelled + pixels.get(ignore_index, 0)
    report.ignore_fraction = round(pixels.get(ignore_index, 0) / total, 6) if total else 0.0
    report.lossy_masks = [str(s.mask) for s in source.samples if s.mask and s.mask.suffix.lower() in (".jpg", ".jpeg")]
    if pixels.get(ignore_index) and not set(pixels) - {0, ignore_index}:
        report.no_objects.append(f"{source.origin}: every mask holds only 0 (background) and {ignore_index} (ignored, "
                                 f"never learnt); binary masks saved as 0/{ignore_index} must mark objects with 1")
    for index, name in enumerate(source.classes):
        report.class_pixel_fraction[name] = round(pixels.get(index, 0) / labelled, 6) if labelled else 0.0
        report.class_image_count[name] = images_with.get(index, 0)
    return report


def print_mask_report(report: MaskCheckReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    splits = ", ".join(f"{k} {v}" for k, v in report.per_split.items())
    print_heading(console, f"{report.origin}: {report.total} image/mask pairs ({splits})")
    table = Table("id", "class", "pixels %", "images")
    for index, name in enumerate(report.classes):
        table.add_row(str(index), name, f"{100 * report.class_pixel_fraction.get(name, 0):.2f}",
                      str(report.class_image_count.get(name, 0)))
    console.print(table)
    console.print(f"ignored pixels (value {report.ignore_index}): {100 * report.ignore_fraction:.2f}%")
    console.print("image modes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.modes.items())))
    console.print("bit depths: " + ", ".join(f"{k} {v}" for k, v in sorted(report.bit_depths.items()))
                  + "; channels: " + ", ".join(f"{k} {v}" for k, v in sorted(report.channels.items())))
    unseen = [n for n, c in report.class_image_count.items() if c == 0]
    if unseen:
        console.print(f"[yellow]classes that appear in no mask: {', '.join(unseen)}[/yellow]")
    sections = [("only one class (a segmenter needs background and at least one class)", report.single_class, "red"),
                ("symbolic links that point nowhere", report.broken_links, "red"),
                ("images without a mask", report.missing_masks, "red"),
                ("masks without an image", report.missing_images, "red"),
                ("unreadable or corrupt files", report.unreadable, "red"),
                ("colour masks (not single-channel class ids)", report.not_single_channel, "red"),
                ("masks whose size differs from the image", report.size_mismatch, "red"),
                ("masks with class ids outside the classes", report.unknown_ids, "red"),
                ("masks saved as JPEG (lossy: class ids change along edges; save as PNG)", report.lossy_masks, "red"),
                ("no object to learn", report.no_objects, "red"),
                ("masks that are all background", report.empty_masks, "yellow")]
    for title, items, colour in sections:
        style = colour if items else "green"
        console.print(f"[{style}]{title}: {len(items)}[/{style}]")
        for item in items[:20]:
            console.print(f"  {item}", markup=False)
        if len(items) > 20:
            console.print(f"  ... and {len(items) - 20} more")
    print_tiny_images(console, report.tiny_images, report.img_size)
    console.print(verdict(report))
