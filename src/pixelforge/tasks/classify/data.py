"""A classification run's data: the resolved source with a split for every image, and the class list.

Kept free of torch: `pixelforge train` resolves the data before torch is imported, and starts decoding the photos
meanwhile (data/prefetch.py).
"""

from __future__ import annotations


def prepare_data(cfg) -> tuple:
    """Resolve the data and give every image a split; the class list is the sorted set of training labels."""
    from dataclasses import replace

    from pixelforge.data.sources import DataSource, refuse_empty_class_folders, resolve_data
    from pixelforge.data.splits import make_splits
    from pixelforge.errors import PixelforgeError

    source = resolve_data(cfg.data)
    refuse_empty_class_folders(source)
    # Nothing to tell apart (training would fail only when writing the report); a continual step may add one class.
    if len(source.classes) < 2 and not cfg.continue_from:
        raise PixelforgeError(f"{source.origin}: only one class ({source.classes[0]!r}); classification needs at "
                              f"least two (one subfolder per class, or two labels in the CSV)")
    source = make_splits(source, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    if not source.split("val"):  # given splits without val: carve one from train
        unsplit = DataSource([replace(s, split=None) if s.split == "train" else s for s in source.samples],
                             source.classes, source.origin, source.broken_links)
        source = make_splits(unsplit, cfg.val_fraction, 0.0, cfg.seed)
    if cfg.train_on_val:
        source = _train_on_val(source)
    train_labels = {s.label for s in source.split("train")}
    missing = sorted(set(source.classes) - train_labels)
    if missing:
        raise PixelforgeError(f"{source.origin}: class {missing[0]!r} has no training images; add some or remove it")
    if cfg.continue_from:  # continual: the parent's classes keep their indices, new ones follow
        from pixelforge.tasks.classify.continual.lineage import grown_classes, parent_run
        from pixelforge.runs import folder as rd

        parent = parent_run(cfg)
        return source, grown_classes(rd.read_json(parent / "classes.json"), train_labels, source.origin, parent)
    return source, sorted(train_labels)


def _train_on_val(source):
    """Val's images trained on as well (copies marked train; val stays, so the engine still reports a val metric,
    now over training images). Only with a test split: it is then the one honest score."""
    from dataclasses import replace

    from pixelforge.data.sources import DataSource
    from pixelforge.errors import PixelforgeError

    if not source.split("test"):
        raise PixelforgeError(f"{source.origin}: train_on_val needs a test split to score on (a test/ folder, a CSV "
                              f"split column, or test_fraction > 0)")
    extra = [replace(s, split="train") for s in source.split("val")]
    return DataSource(source.samples + extra, source.classes, source.origin, source.broken_links)
