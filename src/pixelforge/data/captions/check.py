"""`pixelforge data check --task caption`: counts, images without captions, captions without images, unreadable
images, empty or over-long captions, the vocabulary size (train, at the tokenizer's min count) and the val
out-of-vocabulary rate."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from pixelforge.data.captions.reader import CaptionSource, read_captions
from pixelforge.data.captions.tokenizer import Tokenizer, words
from pixelforge.data.images import ImageReadError, load_rgb

MAX_WORDS = 24  # the task's default max_caption_words: longer captions are cut in training


@dataclass
class CaptionCheck:
    origin: str
    images: int
    captions: int
    per_split: dict
    images_without_captions: list[str] = field(default_factory=list)
    captions_without_images: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    unreadable_images: list[str] = field(default_factory=list)
    empty_captions: list[str] = field(default_factory=list)
    overlong_captions: list[str] = field(default_factory=list)
    vocabulary_size: int = 0
    val_oov_rate: float | None = None
    mean_words: float = 0.0

    @property
    def problem_count(self) -> int:
        return (len(self.images_without_captions) + len(self.captions_without_images) + len(self.missing_files)
                + len(self.unreadable_images) + len(self.empty_captions) + len(self.overlong_captions))

    @property
    def error_count(self) -> int:
        """The problems that stop training or leave an image or caption out; an overlong caption is only cut, so
        only `--strict` fails on it."""
        return self.problem_count - len(self.overlong_captions)

    def to_json(self) -> dict:
        return {**asdict(self), "problem_count": self.problem_count, "error_count": self.error_count}


def check_captions(data: str, min_count: int = 1, max_words: int = MAX_WORDS) -> CaptionCheck:
    source: CaptionSource = read_captions(data)
    captions = [(i, c) for i in source.images for c in i.captions]
    train = [c for i, c in captions if i.split in (None, "train")]
    val = [c for i, c in captions if i.split == "val"]
    tokenizer = Tokenizer.fit(train, min_count)
    lengths = [len(words(c)) for _, c in captions]
    splits = sorted({i.split or "none" for i in source.images})
    return CaptionCheck(
        origin=source.origin, images=len(source.images), captions=len(captions),
        per_split={s: {"images": sum((i.split or "none") == s for i in source.images),
                       "captions": sum((i.split or "none") == s for i, _ in captions)} for s in splits},
        images_without_captions=[i.path for i in source.images if not i.captions],
        captions_without_images=[f"{f}: image_id {i}" for f, i in source.orphan_captions],
        missing_files=source.missing_files, unreadable_images=_unreadable([i.path for i in source.images]),
        empty_captions=[i.path for i, c in captions if not words(c)],
        overlong_captions=[f"{i.path}: {len(words(c))} words" for i, c in captions if len(words(c)) > max_words],
        vocabulary_size=len(tokenizer), val_oov_rate=tokenizer.oov_rate(val) if val else None,
        mean_words=sum(lengths) / max(len(lengths), 1))


def _unreadable(paths: list[str], workers: int = 4) -> list[str]:
    """"PATH: problem" for each image that does not decode: training stops at the first one, so the check, which
    otherwise said "problems: 0", names them all first."""
    def problem(path):
        try:
            load_rgb(path)
        except ImageReadError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [p for p in pool.map(problem, paths) if p]


def print_caption_check(report: CaptionCheck) -> None:
    from rich.console import Console

    console = Console()
    console.print(f"[bold]{report.origin}[/bold]: {report.images} images, {report.captions} captions "
                  f"({report.mean_words:.1f} words on average)")
    for split, counts in report.per_split.items():
        console.print(f"  {split:5s} {counts['images']:6d} images {counts['captions']:7d} captions")
    oov = "–" if report.val_oov_rate is None else f"{100 * report.val_oov_rate:.2f}%"
    console.print(f"vocabulary (train words + 4 special tokens): {report.vocabulary_size}; val out-of-vocabulary: {oov}")
    for title, items in (("images without captions", report.images_without_captions),
                         ("captions without images", report.captions_without_images),
                         ("image files not found", report.missing_files),
                         ("unreadable or corrupt images", report.unreadable_images),
                         ("empty captions", report.empty_captions),
                         (f"captions over {MAX_WORDS} words (cut in training)", report.overlong_captions)):
        console.print(f"{title}: {len(items)}" + (f" (first: {items[0]})" if items else ""))
    warnings_only = report.problem_count and not report.error_count
    console.print(f"problems: {report.problem_count}" + (" (only warnings: training runs; --strict fails on them)"
                                                         if warnings_only else ""))
