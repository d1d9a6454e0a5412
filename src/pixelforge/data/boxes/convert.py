"""`pixelforge data convert`: rewrite a detection dataset from any format pixelforge reads into COCO, YOLO or VOC.

Reading is strict (the same checks as training), so a converted dataset is one pixelforge can train on; images are
hard-linked where the file system allows, else copied. Lossy steps are the target format's own: YOLO has no crowd
regions and keeps no masks, VOC keeps no masks and numbers classes by sorted name. The output appears whole or not
at all.
"""

from __future__ import annotations

from pathlib import Path

from pixelforge.data.boxes.coco import write_coco
from pixelforge.data.boxes.source import read_boxes
from pixelforge.data.boxes.voc import write_voc
from pixelforge.data.boxes.yolo import write_yolo
from pixelforge.errors import PixelforgeError
from pixelforge.output_names import staged_folder

WRITERS = {"coco": write_coco, "yolo": write_yolo, "voc": write_voc}


def convert_boxes(src: str | Path, dst: str | Path, to: str = "coco") -> Path:
    """Read the detection dataset `src` (COCO / YOLO / VOC) and write it to the empty folder `dst` as format `to`.

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
    # Written beside `dst` and renamed, so an interrupted conversion never leaves a part that reads as a dataset (a
    # COCO folder cut after train.json read as one without val).
    with staged_folder(dst) as staging:
        WRITERS[to](source, staging)
    return dst
