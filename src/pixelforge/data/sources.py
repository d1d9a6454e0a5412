"""Where images and labels come from: a folder of class subfolders, a CSV label file, or a built-in dataset.

Every source becomes the same flat list of `Sample`s (path, label, split, group), so the rest of pixelforge never
asks where the data came from. Layouts understood:

    DIR/<class>/*.jpg                      no splits: pixelforge makes seeded, stratified ones
    DIR/{train,val,test}/<class>/*.jpg     given splits (`valid`/`validation` also mean val)
    FILE.csv with columns path,label[,split][,group][,any other column]; paths relative to the CSV's folder
    digits | shapes                        built-in datasets, written once to the pixelforge cache
"""

from __future__ import annotations

import csv
import glob
import io
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from pixelforge.data.images import IMAGE_EXTENSIONS, UNREAD_FORMATS, is_image_file, list_broken_links, list_images
from pixelforge.errors import PixelforgeError

SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def split_folder(path: Path, root: Path) -> str | None:
    """The split that the first folder of `path` below `root` names (`train`, `val` and its aliases, `test`); None
    for a file directly in `root` or below any other folder.

    Example:
        >>> root = Path("photos")
        >>> split_folder(root / "Validation/cats/a.jpg", root), split_folder(root / "a.jpg", root)
        ('val', None)
    """
    parts = path.relative_to(root).parts
    return SPLIT_ALIASES.get(parts[0].lower()) if len(parts) > 1 else None


@dataclass
class Sample:
    path: Path
    label: str
    split: str | None = None
    attrs: dict = field(default_factory=dict, compare=False)


@dataclass
class DataSource:
    """A resolved dataset: its samples, sorted class names, and where it was read from."""

    samples: list[Sample]
    classes: list[str]
    origin: str
    broken_links: list[str] = field(default_factory=list)  # symbolic links that point nowhere, left out of samples
    # Class folders with no image in any split (only .heic photos, notes, an emptied folder): no class comes of them,
    # so they are named (torchvision's ImageFolder refuses them too) instead of the class silently missing.
    empty_class_folders: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    @property
    def has_splits(self) -> bool:
        return any(s.split is not None for s in self.samples)


def card_name(data: str | Path) -> str:
    """The training data as a model card names it: a local path by its last two parts, a built-in dataset's name or a
    URL as given. Cards travel with exported models, and the full path is only the trainer's
    machine's (config.yaml keeps it for resuming).

    Example:
        >>> card_name("/home/ana/data/hymenoptera/train"), card_name("/srv/coco/train.json"), card_name("shapes")
        ('hymenoptera/train', 'coco/train.json', 'shapes')
    """
    text = str(data)
    if "://" in text or ("/" not in text and "\\" not in text):
        return text
    path = Path(text)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def resolve_data(data: str | Path) -> DataSource:
    """Read `data` (a folder, a CSV file, or a built-in name) into a `DataSource`.

    Raises:
        PixelforgeError: the path does not exist, holds no images, or the CSV lacks the needed columns.
    """
    from pixelforge.data import builtin  # local: the built-in generators import scikit-learn

    text = str(data)
    if text in builtin.BUILTIN_DATASETS:
        data = builtin.materialize(text)
    path = Path(data).expanduser()
    if not path.exists():
        names = ", ".join(sorted(builtin.BUILTIN_DATASETS))
        raise PixelforgeError(f"{path}: no such file or folder; give a folder of class subfolders, a CSV, or one of: {names}")
    source = read_csv(path) if path.is_file() else read_folder(path)
    if not source.samples:
        if source.broken_links:
            raise PixelforgeError(f"{path}: no images found, only {len(source.broken_links)} symbolic link(s) that "
                                  f"point nowhere, e.g. {source.broken_links[0]}")
        if path.is_dir():  # an iPhone's HEIC photos: named as such, not "no images"
            refuse_unread_formats([path])
        raise PixelforgeError(f"{path}: no images found (looked for {', '.join(sorted({'.jpg', '.png', '.bmp', '.tif', '.webp'}))} files)")
    return source


def read_folder(root: Path) -> DataSource:
    split_dirs = {SPLIT_ALIASES[d.name.lower()]: d for d in sorted(root.iterdir()) if d.is_dir() and d.name.lower() in SPLIT_ALIASES}
    samples: list[Sample] = []
    if split_dirs:
        for split, split_dir in split_dirs.items():
            samples += _class_folders(split_dir, split)
    else:
        samples = _class_folders(root, None)
    if not samples and list_images(root):
        raise PixelforgeError(
            f"{root}: images found but no class subfolders; put each class's images in DIR/<class_name>/ or use a CSV"
        )
    labels = {s.label for s in samples}
    empty = [str(d) for folder in (split_dirs.values() if split_dirs else [root]) for d in _class_dirs(folder)
             if d.name not in labels]
    return DataSource(samples, sorted(labels), str(root), [str(p) for p in list_broken_links(root)], empty)


def _class_dirs(folder: Path) -> list[Path]:
    """The class folders of `folder`: not hidden, and not `__MACOSX` (a Mac zip's resource forks, never a class)."""
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name != "__MACOSX")


def _class_folders(folder: Path, split: str | None) -> list[Sample]:
    samples = []
    for class_dir in _class_dirs(folder):
        samples += [Sample(p, class_dir.name, split) for p in list_images(class_dir)]
    return samples


def refuse_empty_class_folders(source: DataSource) -> None:
    """One line for a class folder that holds no image: a class the user meant would be missing from the model."""
    if source.empty_class_folders:
        more = f" (and {len(source.empty_class_folders) - 1} more)" if len(source.empty_class_folders) > 1 else ""
        for folder in map(Path, source.empty_class_folders):  # its photos are HEIC (or RAW): say so and how to fix it
            unread = _unread_files(folder)
            if unread:
                kinds = ", ".join(sorted({UNREAD_FORMATS[p.suffix.lower()] for p in unread}))
                raise PixelforgeError(f"{folder}: a class folder with no images pixelforge reads{more}: its "
                                      f"{len(unread)} file(s) are {kinds} (e.g. {unread[0].name}), a format pixelforge "
                                      f"does not read; convert them to JPEG or PNG")
        raise PixelforgeError(f"{source.empty_class_folders[0]}: a class folder with no images{more} (looked for "
                              f"{', '.join(sorted(IMAGE_EXTENSIONS))}); add its images or move the folder out")


def utf8_text(path: Path, save_as: str = "UTF-8 text") -> str:
    """A text file the user wrote (labels, captions, templates): UTF-8, with or without the byte-order mark Excel
    and Notepad write; one line naming the file and the first bad byte else, and how to save it (`save_as`)."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PixelforgeError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                              f"{exc.start}); save the file as {save_as}") from None


def csv_text(csv_path: Path) -> str:
    """A CSV file's text (`utf8_text`), refused in one line when it holds NUL bytes (a spreadsheet's binary file)."""
    text = utf8_text(csv_path, "UTF-8 CSV")
    if "\x00" in text:
        raise PixelforgeError(f"{csv_path}: holds NUL bytes, so it is not a text CSV; save it as UTF-8 CSV")
    return text


def csv_image_path(text: str, csv_path: Path) -> Path:
    r"""A CSV row's image path: `~` expanded, a relative one read from the CSV's folder. A CSV written on Windows
    (`images\ants\1.jpg`) names files that POSIX reads as one name with backslashes in it: when no such file exists,
    its backslashes are taken as folder separators (a name may hold a backslash on POSIX, so the file is tried first).

    Example:
        >>> csv_image_path(r"ants\1.jpg", Path("data/labels.csv")).as_posix()
        'data/ants/1.jpg'
    """
    path = Path(text).expanduser()
    full = path if path.is_absolute() else csv_path.parent / path
    if "\\" in text and not full.exists():
        path = Path(PureWindowsPath(text).as_posix()).expanduser()
        full = path if path.is_absolute() else csv_path.parent / path
    return full


def read_csv(csv_path: Path) -> DataSource:
    if csv_path.suffix.lower() != ".csv":
        raise PixelforgeError(f"{csv_path}: not a folder or a .csv label file")
    text = csv_text(csv_path)
    with io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in ("path", "label") if c not in columns]
        if missing:
            raise PixelforgeError(
                f"{csv_path}: missing column(s) {', '.join(missing)} (found: {', '.join(columns) or 'none'}); "
                "the header must be path,label[,split][,group]"
            )
        samples, relative = [], []
        for line_no, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            if not row["path"] or not row["label"]:
                raise PixelforgeError(f"{csv_path}:{line_no}: empty path or label")
            split = row.get("split") or None
            if split is not None:
                if split.lower() not in SPLIT_ALIASES:
                    raise PixelforgeError(f"{csv_path}:{line_no}: split {split!r} is not one of train, val, test")
                split = SPLIT_ALIASES[split.lower()]
            image_path = csv_image_path(row["path"], csv_path)
            if image_path.is_relative_to(csv_path.parent) and not Path(row["path"]).expanduser().is_absolute():
                relative.append(image_path.relative_to(csv_path.parent))
            extra = {k: v for k, v in row.items() if k not in ("path", "label", "split")}
            samples.append(Sample(image_path, row["label"], split, extra))
    _check_relative_to_the_csv(csv_path, relative)
    broken = [s.path for s in samples if s.path.is_symlink() and not s.path.exists()]
    samples = [s for s in samples if not (s.path.is_symlink() and not s.path.exists())] if broken else samples
    return DataSource(samples, sorted({s.label for s in samples}), str(csv_path), [str(p) for p in broken])


def _check_relative_to_the_csv(csv_path: Path, relative: list[Path]) -> None:
    """Refuse a CSV whose relative paths all miss from its folder but are found from the current one: written
    relative to where the user stood, every image would otherwise be reported missing, one by one, by its resolved
    path (which hides why)."""
    if not relative or any((csv_path.parent / p).exists() for p in relative):
        return
    if relative[0].exists():
        raise PixelforgeError(f"{csv_path}: relative paths are read from the CSV's folder ({csv_path.parent}), where "
                              f"none of them exists ({relative[0]}: not there); they exist from the current folder: "
                              "write them relative to the CSV's folder, or absolute")


def collect_paths(paths: list[str | Path]) -> list[str]:
    """Expand files, folders (recursively) and glob patterns into image file paths, in the order given.

    A file named directly is returned exactly as given, so results can be matched to the user's input.
    """
    found: list[str] = []
    empty_folders = []
    for item in paths:
        path = Path(item).expanduser()
        if path.is_dir():
            images = list_images(path)
            found += [str(p) for p in images]
            empty_folders += [] if images else [path]
        elif path.is_file():
            found.append(str(item))
        elif any(ch in str(item) for ch in "*?["):
            found += sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file() and is_image_file(Path(p)))
        else:
            raise PixelforgeError(f"{path}: no such file or folder")
    if not found:
        refuse_unread_formats(empty_folders)
    return found


def refuse_unread_formats(folders: list[Path]) -> None:
    """A folder of photos in formats pixelforge does not decode (an iPhone's .HEIC) is named as such rather than
    reported as holding no images."""
    for folder in folders:
        unread = _unread_files(folder)
        if unread:
            kinds = ", ".join(sorted({p.suffix.lower() for p in unread}))
            raise PixelforgeError(f"{folder}: holds {len(unread)} image(s) in formats pixelforge does not read ({kinds}, "
                                  f"e.g. {unread[0].name}) and none it reads; convert them to JPEG or PNG")


def _unread_files(folder: Path) -> list[Path]:
    """Files below `folder` in a format pixelforge names but does not decode (HEIC, camera RAW, SVG)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in UNREAD_FORMATS)


def output_stems(paths: list[str | Path]) -> list[str]:
    """One output file stem per input path, none taken twice: the file's own stem, or `STEM-2`, `STEM-3`... after
    an earlier file with that stem (class folders often each hold a `1.jpg`; `a.jpg` may sit beside `a.png`).
    Stems are compared case-insensitively, as macOS and Windows file systems compare names.

    Example:
        >>> output_stems(["ants/1.jpg", "bees/1.jpg", "bees/1.png", "a/B.png", "b/b.jpg"])
        ['1', '1-2', '1-3', 'B', 'b-2']
    """
    used: set[str] = set()
    stems = []
    for path in paths:
        stem = candidate = Path(path).stem
        number = 2
        while candidate.casefold() in used:
            candidate, number = f"{stem}-{number}", number + 1
        used.add(candidate.casefold())
        stems.append(candidate)
    return stems
