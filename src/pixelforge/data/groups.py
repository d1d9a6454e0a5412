"""Which group each image belongs to, for fairness reports, group-balanced training and the model card.

A group is any attribute a model should work equally well across (a site, a camera, a skin tone, a season). It
comes from one of two places, named by one string (`--groups SPEC`):

    COLUMN          a column of the CSV label file (path,label,group,...): each row's value is its group
    MAPPING.csv     a folder-level mapping, a CSV with columns folder,group: an image takes the group of its
                    deepest ancestor folder matching a row; `folder` is relative to the mapping file's folder and
                    may hold shell wildcards, e.g. `train/*/outdoor,outdoor` for DIR/train/<class>/outdoor/*.jpg

Example:
    >>> from pathlib import Path
    >>> from pixelforge.data.sources import Sample
    >>> resolve_groups([Sample(Path("a.png"), "cat", None, {"site": "north"})], "site", "labels.csv")
    ['north']
"""

from __future__ import annotations

import csv
import fnmatch
import io
from pathlib import Path

from pixelforge.data.sources import Sample, csv_text
from pixelforge.errors import PixelforgeError

BLANK_GROUP = "(none)"  # a CSV row, or a mapping row, whose group cell is empty


def is_mapping_file(spec: str) -> bool:
    return spec.lower().endswith(".csv") and Path(spec).expanduser().is_file()


def has_groups(samples: list[Sample], spec: str | None) -> bool:
    """True when `spec` names a column every sample carries, or an existing mapping file."""
    if not spec:
        return False
    return is_mapping_file(spec) or bool(samples) and all(spec in s.attrs for s in samples)


def resolve_groups(samples: list[Sample], spec: str, origin: str) -> list[str]:
    """One group name per sample, from a CSV column or a folder,group mapping file (see the module docstring).

    Raises:
        PixelforgeError: the column is missing, or the mapping leaves an image without a group.
    """
    if is_mapping_file(spec):
        return _from_mapping(samples, Path(spec).expanduser())
    missing = [s for s in samples if spec not in s.attrs]
    if missing:
        columns = sorted({k for s in samples for k in s.attrs})
        found = f"extra columns found: {', '.join(columns)}" if columns else "the data has no extra columns"
        raise PixelforgeError(
            f"{origin}: no group column {spec!r} ({found}); pass --groups with a column of the CSV "
            "(path,label,group) or a folder,group mapping .csv file"
        )
    return [s.attrs[spec] or BLANK_GROUP for s in samples]


def _from_mapping(samples: list[Sample], mapping: Path) -> list[str]:
    with io.StringIO(csv_text(mapping), newline="") as handle:  # not UTF-8: one line, as a label CSV (was a traceback)
        reader = csv.DictReader(handle)
        if not {"folder", "group"} <= {c.strip() for c in reader.fieldnames or []}:
            raise PixelforgeError(f"{mapping}: a group mapping needs the columns folder,group (one row per folder)")
        rules = [((row["folder"] or "").strip().rstrip("/"), (row["group"] or "").strip()) for row in reader]
    root = mapping.parent.resolve()
    groups = []
    for sample in samples:
        group = _match(sample.path.resolve(), root, rules)
        if group is None:
            raise PixelforgeError(f"{mapping}: no folder row matches {sample.path}; add a folder,group row for it "
                                  "(wildcards such as train/*/outdoor work)")
        groups.append(group or BLANK_GROUP)
    return groups


def _match(path: Path, root: Path, rules: list[tuple[str, str]]) -> str | None:
    """The group of the deepest ancestor folder of `path` that a rule matches (relative to `root`, or absolute)."""
    for folder in path.parents:
        names = [folder.as_posix()]
        if folder.is_relative_to(root) and folder != root:
            names.append(folder.relative_to(root).as_posix())
        for pattern, group in rules:
            if any(fnmatch.fnmatchcase(name, pattern) for name in names):
                return group
    return None
