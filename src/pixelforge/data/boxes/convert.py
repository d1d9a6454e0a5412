"""`pixelforge data convert`: rewrite a detection dataset from any format pixelforge reads into COCO, YOLO or VOC.

Reading is strict (the same checks as training), so a converted dataset is one pixelforge can train on; images are
hard-linked where the file system allows, else copied. Lossy steps are the target format's own: YOLO has no crowd
regions and keeps no masks, VOC keeps no masks and numbers classes by sorted name. The output appears whole or not
at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pixelforge.data.boxes.coco import write_coco
from pixelforge.data.boxes.source import BoxSource, read_boxes
from pixelforge.data.boxes.voc import write_voc
from pixelforge.data.boxes.yolo import one_polygon, write_yolo
from pixelforge.errors import PixelforgeError
from pixelforge.output_names import staged_folder

WRITERS = {"coco": write_coco, "yolo": write_yolo, "voc": write_voc}


def conversion_losses(source: BoxSource, to: str) -> list[str]:
    """What format `to` cannot hold of `source`, one line each (empty when nothing is lost)."""
    objects = [(crowd, outline) for image in source.images
               for crowd, outline in zip(image.iscrowd, image.segmentations or [None] * len(image.iscrowd))]
    masks = [outline for crowd, outline in objects if outline and not crowd]
    lines = []
    if to == "yolo":
        crowds = sum(bool(crowd) for crowd, _ in objects)
        if crowds:
            lines.append(f"{crowds} crowd region(s) left out: YOLO labels cannot mark a region to ignore")
        boxed = sum(one_polygon(outline) is None for outline in masks)
        if boxed:
            lines.append(f"{boxed} of {len(masks)} object masks kept as boxes only (an RLE or several polygons; "
                         f"YOLO's segment format holds one polygon an object): --to coco keeps them")
    elif to == "voc" and masks:
        lines.append(f"{len(masks)} object masks not kept: VOC XML holds boxes (--to coco keeps them)")
    return lines


def convert_boxes(src: str | Path, dst: str | Path, to: str = "coco", report: Callable[[str], None] | None = None
                  ) -> Path:
    """Read the detection dataset `src` (COCO / YOLO / VOC) and write it to the empty folder `dst` as format `to`;
    `report(line)` is told what the format cannot hold (masks, crowd regions), before anything is written.

    Example:
        >>> convert_boxes("shapes_detect", "shapes_yolo", to="yolo")  # doctest: +SKIP
        PosixPath('shapes_yolo')
    """
    if to not in WRITERS:
        raise PixelforgeError(f"--to {to!r}: unknown format; choose one of {', '.join(WRITERS)}")
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise PixelforgeError(f"{dst}: the output folder is not empty; choose a new folder so files do not mix")
    if dst.resolve() == Path(src).resolve():
        raise PixelforgeError(f"{dst}: output and input are the same folder; choose a new output folder")
    source = read_boxes(src)
    for line in conversion_losses(source, to) if report is not None else []:
        report(line)
    # Written beside `dst` and renamed, so an interrupted conversion never leaves a part that reads as a dataset (a
    # COCO folder cut after train.json read as one without val).
    with staged_folder(dst) as staging:
        WRITERS[to](source, staging)
    return dst
