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
    if empty:
        logging.getLogger("pixelforge").warning("skipping %d empty caption(s) (`pixelforge data check --task caption` "
                                                "lists them)", empty)
    if not source.split("train") or not source.split("val"):
        raise PixelforgeError(f"{source.origin}: need captioned images in both train and val splits "
                              f"(found {len(source.split('train'))} train, {len(source.split('val'))} val)")
    return source
