"""Captioned data for the tasks that read it (caption, clip): the built-in shapes captions or a user's COCO-captions
JSON / captions.csv, with splits assigned by image when the data has none."""

from __future__ import annotations

import logging

from pixelforge.data.captions.reader import CaptionSource, assign_splits, read_captions
from pixelforge.data.captions.tokenizer import words
from pixelforge.errors import PixelforgeError


def read_caption_source(cfg) -> CaptionSource:
    """`cfg.data` (a path, or `shapes`) read and split; one-line error without captioned train and val images."""
    data = cfg.data
    if data == "shapes":
        from pixelforge.data.builtin import materialize

        data = str(materialize("shapes", kind="captions"))
    source = assign_splits(read_captions(data), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    # An empty caption would teach the decoder to stop at once and be an empty BLEU reference: left out, and said.
    empty = 0
    for image in source.images:
        kept = [c for c in image.captions if words(c)]
        empty, image.captions = empty + len(image.captions) - len(kept), kept
    log = logging.getLogger("pixelforge")
    if empty:
        log.warning("skipping %d empty caption(s) (`pixelforge data check --task caption` lists them)", empty)
    # The readers leave out a caption whose image file is gone or whose image_id names no image; training on the
    # rest is right (a partly downloaded COCO set), but silently it hid a typo in a path.
    if source.missing_files:
        log.warning("skipping the captions of %d image file(s) not found (first: %s; `pixelforge data check --task "
                    "caption` lists them)", len(source.missing_files), source.missing_files[0])
    if source.orphan_captions:
        file, image_id = source.orphan_captions[0]
        log.warning("skipping %d caption(s) whose image_id names no image (first: %s: image_id %s)",
                    len(source.orphan_captions), file, image_id)
    if not source.split("train") or not source.split("val"):
        raise PixelforgeError(f"{source.origin}: need captioned images in both train and val splits "
                              f"(found {len(source.split('train'))} train, {len(source.split('val'))} val)")
    return source
