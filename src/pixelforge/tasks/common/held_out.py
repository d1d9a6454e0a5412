"""Leave a run's own training images out of an evaluation on data the user names (`evaluate RUN --data X`).

A score on a folder that holds the images the model trained on measures memorisation, silently. A run knows which
files it trained on: its config's data, seed and split fractions reproduce its split, so every task that evaluates
on user data hands `leave_out_training_images` the images it is about to score and a way to list its training
files. They are matched by resolved path and by content hash (a copy under another name is the same image); only
files of a size some training file has are hashed, so a folder of other images costs one `stat` each.

The count goes into the metrics as `excluded_training_images` (None when `include_train` asked for every image).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from pixelforge.errors import PixelforgeError

log = logging.getLogger("pixelforge")
Item = TypeVar("Item")


def leave_out_training_images(chosen: list[Item], path_of: Callable[[Item], Path],
                              training_paths: Callable[[], Iterable[Path]], data, split: str,
                              include_train: bool = False) -> tuple[list[Item], int | None]:
    """(`chosen` less the run's training images, how many were left out; None: not checked).

    `data` is what the user named (`--data`); None is the run's own data, whose held-out split needs no check (0),
    or whose train split the user asked for by name (None).

    `training_paths()` lists the files the run trained on (usually its `prepare_data(config)`'s train split); a
    PixelforgeError from it (the training data moved) is a warning and every image is scored. A one-line
    PixelforgeError naming `--include-train` when every chosen image is a training image.

    Example:
        >>> kept, left_out = leave_out_training_images(samples, lambda s: s.path,  # doctest: +SKIP
        ...                                            lambda: train_paths, "photos", "all")
        >>> metrics["excluded_training_images"] = left_out  # doctest: +SKIP
    """
    if data is None:
        return chosen, None if split == "train" else 0
    if include_train:
        return chosen, None
    try:
        training = _listed_quietly(training_paths)
    except PixelforgeError as exc:  # say so rather than guess
        log.warning("cannot check for the run's training images (%s); all images are scored", exc)
        return chosen, 0
    trained = _matcher(training)
    kept = [item for item in chosen if not trained(Path(path_of(item)))]
    if not kept:
        raise PixelforgeError(f"{data}: all {len(chosen)} images in split {split!r} are the run's own training "
                              "images; score other images, or pass --include-train to score them anyway")
    excluded = len(chosen) - len(kept)
    if excluded:
        log.warning("%s: %d of %d images are the run's training images and are left out of the score "
                    "(--include-train to score them)", data, excluded, len(chosen))
    return kept, excluded


def _listed_quietly(training_paths: Callable[[], Iterable[Path]]) -> list[Path]:
    """The training files, without the warnings re-reading the training data gives again (empty captions, missing
    files): training printed them already, and here they would read as the evaluated data's."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        return [Path(p) for p in training_paths()]
    finally:
        logging.disable(previous)


def _matcher(training: list[Path]) -> Callable[[Path], bool]:
    """Whether a file is one of `training`: the same resolved path, or the same bytes (hashed only on equal size)."""
    from pixelforge.data.splits import content_hash

    paths = {p.resolve() for p in training}
    by_size: dict[int, list[Path]] = {}
    for path in training:
        by_size.setdefault(_size(path), []).append(path)
    hashes: dict[int, set[str]] = {}  # size -> the training files' hashes of that size, computed on first need

    def trained(path: Path) -> bool:
        if path.resolve() in paths:
            return True
        size = _size(path)
        if size < 0 or size not in by_size:
            return False
        if size not in hashes:
            hashes[size] = {content_hash(p) for p in by_size[size]}
        return content_hash(path) in hashes[size]

    return trained


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def left_out_note(metrics: dict) -> str:
    """The CLI summary's note on the images `leave_out_training_images` left out ("" when none)."""
    count = metrics.get("excluded_training_images")
    return f"  ({count} training images left out)" if count else ""
