"""Which images a box task's run is evaluated or export-checked on: shared by detection and instance segmentation."""

from __future__ import annotations

from pixelforge.errors import PixelforgeError


def select_box_images(config, classes: list[str], data: str | None, split: str | None, prepare_data):
    """(images, categories {id: name}, split name, run label -> data category id) to evaluate a box task's run on.

    The run's own data and split by default (`prepare_data(config)`; test when it has one, else val); else `data`
    (its test split, else val, else train; all images when it has no splits); or the named `split`. Categories are
    matched by name, so a dataset that numbers them differently still scores correctly.
    """
    from pixelforge.data.boxes.source import read_boxes

    from pixelforge.runs.files import held_out_split

    source = prepare_data(config)[0] if data is None else read_boxes(data)
    name = held_out_split(source, split, own_data=data is None)
    chosen = source.images if name == "all" else source.split(name)
    if not chosen:
        raise PixelforgeError(f"{source.origin}: no images in split {name!r}")
    by_name = {n: i for i, n in source.categories.items()}
    unknown = sorted(set(by_name) - set(classes))
    if unknown:
        raise PixelforgeError(f"{source.origin}: category {unknown[0]!r} is not one the model knows "
                              f"({', '.join(classes)})")
    # Classes the data lacks keep the run's id: their detections are then false positives for no category.
    mapping = [by_name.get(c, -1 - i) for i, c in enumerate(classes)]
    return chosen, source.categories, name, mapping
