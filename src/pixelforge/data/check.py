"""`pixelforge data check`: everything worth knowing about a dataset before training on it, on one screen.

Counts per class and split, class imbalance, a single class (nothing to classify), symbolic links that point
nowhere, unreadable / truncated / zero-byte files (listed, never fatal), exact
duplicates by content hash and those that cross splits (leakage), image size distribution, colour modes
(grayscale, CMYK, alpha, palette, 16-bit) and EXIF-rotated photos.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pixelforge.data.images import IMAGE_EXTENSIONS, list_broken_links, list_images
from pixelforge.data.sources import resolve_data, split_folder
from pixelforge.data.splits import content_hash
from pixelforge.errors import PixelforgeError

_EXIF_ORIENTATION = 0x0112
UNLABELLED = "images"  # the one row of a folder of unlabelled photos


@dataclass
class CheckReport:
    origin: str
    total: int
    per_class: dict[str, int]
    per_split: dict[str, dict[str, int]]
    imbalance_ratio: float
    unreadable: list[str] = field(default_factory=list)
    zero_byte: list[str] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    cross_split_duplicates: list[list[str]] = field(default_factory=list)
    modes: dict[str, int] = field(default_factory=dict)
    exif_rotated: list[str] = field(default_factory=list)
    sizes: dict[str, float] = field(default_factory=dict)
    small_classes: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    single_class: list[str] = field(default_factory=list)  # the one class, when there is only one: training refuses
    empty_class_folders: list[str] = field(default_factory=list)  # no class comes of them: training refuses
    img_size: int | None = None
    # Images whose shorter side is under a quarter of --img-size: upsampled 4x or more they are mostly blur, and a
    # model trained on them learns little. A warning (not a problem): small inputs can be deliberate (icons, digits).
    tiny_images: list[str] = field(default_factory=list)

    @property
    def problem_count(self) -> int:
        return (len(self.unreadable) + len(self.zero_byte) + len(self.duplicates) + len(self.cross_split_duplicates)
                + len(self.small_classes) + len(self.broken_links) + len(self.single_class)
                + len(self.empty_class_folders))

    @property
    def error_count(self) -> int:
        """The problems that stop training or leave images out; duplicates and leakage are not: training runs on
        every copy, so only `--strict` fails on them."""
        return self.problem_count - len(self.duplicates) - len(self.cross_split_duplicates)

    def to_json(self) -> dict:
        from dataclasses import asdict

        return {**asdict(self), "problem_count": self.problem_count, "error_count": self.error_count}


def _inspect(path) -> dict:
    info = {"path": str(path), "hash": content_hash(path), "size": None, "mode": None, "rotated": False, "error": None}
    try:
        if not path.exists():
            info["error"] = "file not found" + (" (a symbolic link that points nowhere)" if path.is_symlink() else "")
            return info
        if path.stat().st_size == 0:
            info["error"] = "zero-byte"
            return info
        with Image.open(path) as img:
            info["size"], info["mode"] = img.size, img.mode
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
            info["rotated"] = orientation not in (None, 1)
            img.load()  # decodes fully: catches truncated files that `verify()` lets through
    except Exception as exc:  # noqa: BLE001 - every decoder failure is reported the same way
        info["error"] = f"{type(exc).__name__}: {exc}"
    return info


TINY_FACTOR = 4  # an image is "tiny" when --img-size is this many times its shorter side or more


def tiny_images(sizes: list[tuple], img_size: int | None) -> list[str]:
    """"path: WxH" for each (path, (w, h) or None) whose shorter side is under img_size / TINY_FACTOR (none when
    img_size is None)."""
    if not img_size:
        return []
    return [f"{path}: {size[0]}x{size[1]}" for path, size in sizes if size and min(size) * TINY_FACTOR <= img_size]


def check_dataset(data: str, workers: int = 4, img_size: int | None = None) -> CheckReport:
    """Inspect every image of `data` (folder, CSV or built-in) and return the findings; with `img_size` (the size
    training will use) also list the images too small for it."""
    source = resolve_data(data)
    report = _report(source.origin, [(s.path, s.label, s.split) for s in source.samples], workers, img_size)
    report.broken_links = list(source.broken_links)
    report.empty_class_folders = list(source.empty_class_folders)
    return report


def check_image_folder(data: str, workers: int = 4, img_size: int | None = None) -> CheckReport:
    """The same report for a folder of unlabelled photos (what denoise, compress, style and a plain GAN read): its
    images at any depth, split by a first folder named train/val/test where there is one."""
    root = Path(data).expanduser()
    if not root.is_dir():
        raise PixelforgeError(f"{root}: not a folder of images")
    files = list_images(root)
    if not files:
        raise PixelforgeError(f"{root}: no images found ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    items = [(path, UNLABELLED, split_folder(path, root)) for path in files]
    report = _report(str(root), items, workers, img_size)
    report.broken_links = [str(link) for link in list_broken_links(root)]
    return report


def _report(origin: str, items: list[tuple[Path, str, str | None]], workers: int, img_size: int | None) -> CheckReport:
    """The findings over (path, label, split) items: counts, unreadable files, duplicates and leakage, modes, sizes."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        infos = list(pool.map(_inspect, [path for path, _, _ in items]))
    labels = [label for _, label, _ in items]
    splits = [split for _, _, split in items]
    per_class = Counter(labels)
    per_split: dict[str, Counter] = defaultdict(Counter)
    for label, split in zip(labels, splits):
        per_split[split or "unsplit"][label] += 1
    by_hash: dict[str, list[int]] = defaultdict(list)
    for index, info in enumerate(infos):
        if info["error"] is None:
            by_hash[info["hash"]].append(index)
    duplicates = [[infos[i]["path"] for i in group] for group in by_hash.values() if len(group) > 1]
    leaks = [[f"{splits[i]}:{infos[i]['path']}" for i in group] for group in by_hash.values()
             if len({splits[i] for i in group}) > 1]
    modes = Counter()
    for info in infos:
        if info["mode"]:
            modes[{"L": "grayscale", "1": "grayscale", "I;16": "16-bit", "I;16B": "16-bit", "I": "16-bit",
                   "RGBA": "alpha", "LA": "alpha", "P": "palette"}.get(info["mode"], info["mode"])] += 1
    shapes = np.array([info["size"] for info in infos if info["size"]], dtype=float).reshape(-1, 2)
    sizes = {}
    if len(shapes):
        short = shapes.min(1)
        sizes = {"min_short_side": float(short.min()), "median_short_side": float(np.median(short)),
                 "max_short_side": float(short.max()), "median_width": float(np.median(shapes[:, 0])),
                 "median_height": float(np.median(shapes[:, 1]))}
    counts = list(per_class.values())
    labelled = set(per_class) != {UNLABELLED}
    return CheckReport(
        origin=origin, total=len(items), per_class=dict(sorted(per_class.items())),
        per_split={k: dict(sorted(v.items())) for k, v in sorted(per_split.items())},
        imbalance_ratio=round(max(counts) / max(min(counts), 1), 3) if counts else 0.0,
        unreadable=[f"{i['path']}: {i['error']}" for i in infos if i["error"] and i["error"] != "zero-byte"],
        zero_byte=[i["path"] for i in infos if i["error"] == "zero-byte"],
        duplicates=duplicates, cross_split_duplicates=leaks, modes=dict(modes),
        exif_rotated=[i["path"] for i in infos if i["rotated"]], sizes=sizes,
        small_classes=sorted(label for label, n in per_class.items() if n < 2) if labelled else [],
        single_class=sorted(per_class) if labelled and len(per_class) == 1 else [],
        img_size=img_size, tiny_images=tiny_images([(i["path"], i["size"]) for i in infos], img_size),
    )


def print_heading(console, text: str) -> None:
    """A report's heading on a line of its own: as the table's title it was wrapped to the table's width, cutting the
    folder's name in two ("../shared/data/hymenoptera/t" / "rain: 245 images")."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def print_report(report: CheckReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    splits = list(report.per_split)
    labelled = set(report.per_class) != {UNLABELLED}
    print_heading(console, f"{report.origin}: {report.total} images")
    table = Table("class" if labelled else "", *splits, "total")
    for label, total in report.per_class.items():
        table.add_row(label, *(str(report.per_split[s].get(label, 0)) for s in splits), str(total))
    console.print(table)
    if labelled:
        console.print(f"class imbalance (largest / smallest): {report.imbalance_ratio}")
    if report.sizes:
        s = report.sizes
        console.print(f"shorter side: min {s['min_short_side']:.0f}, median {s['median_short_side']:.0f}, "
                      f"max {s['max_short_side']:.0f} px; median {s['median_width']:.0f}x{s['median_height']:.0f}")
    console.print("colour modes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.modes.items())))
    console.print(f"EXIF-rotated photos: {len(report.exif_rotated)} (pixelforge rotates them upright)")
    sections = [("symbolic links that point nowhere", report.broken_links),
                ("unreadable or corrupt files", report.unreadable), ("zero-byte files", report.zero_byte),
                ("exact duplicate groups", [" = ".join(g) for g in report.duplicates]),
                ("duplicates across splits (leakage)", [" = ".join(g) for g in report.cross_split_duplicates])]
    if labelled:
        sections += [("only one class (classification needs two or more)", report.single_class),
                     ("class folders without images", report.empty_class_folders),
                     ("classes with fewer than 2 images", report.small_classes)]
    for title, items in sections:
        style = "red" if items else "green"
        console.print(f"[{style}]{title}: {len(items)}[/{style}]")
        for item in items[:20]:
            console.print(f"  {item}", markup=False)
        if len(items) > 20:
            console.print(f"  ... and {len(items) - 20} more")
    print_tiny_images(console, report.tiny_images, report.img_size)
    console.print(verdict(report))


def verdict(report) -> str:
    """The last line of every task's report: it says why `data check` exits 0 on problems that are only warnings."""
    if not report.problem_count:
        return "[green]no problems found[/green]"
    if report.error_count:
        return f"[red]{report.problem_count} problem(s)[/red]"
    return f"[yellow]{report.problem_count} problem(s), only warnings: training runs (--strict fails on them)[/yellow]"


def print_tiny_images(console, tiny: list[str], img_size: int | None) -> None:
    """The warning for images far smaller than the training size (shared by every task's report)."""
    if not tiny:
        return
    console.print(f"[yellow]warning: {len(tiny)} image(s) with a shorter side under {img_size // TINY_FACTOR} px, "
                  f"upsampled {TINY_FACTOR}x or more to --img-size {img_size}; consider a smaller --img-size[/yellow]")
    for item in tiny[:10]:
        console.print(f"  {item}", markup=False)
    if len(tiny) > 10:
        console.print(f"  ... and {len(tiny) - 10} more")
