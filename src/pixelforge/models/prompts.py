"""Prompt templates and class names for zero-shot classification, without torch (the CLIP package's runtime path
of `pixelforge zeroshot` uses them too): CLIP's ImageNet prompts, a template file, the `--labels` list."""

from __future__ import annotations

import string
from pathlib import Path

from pixelforge.errors import PixelforgeError


def imagenet_templates() -> list[str]:
    """"a photo of a {}." (CLIP's single default) and the 7-template ImageNet subset of OpenAI's prompt-engineering
    notebook, which open_clip ships as SIMPLE_IMAGENET_TEMPLATES (lambdas; called with "{}" to get format strings,
    since open_clip's classifier builder needs all templates of one kind)."""
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    return ["a photo of a {}.", *[t("{}") for t in SIMPLE_IMAGENET_TEMPLATES]]


def read_templates(choice: str, default: list[str], option: str = "--templates") -> list[str]:
    """`default` (the model's ensemble), `none` (the bare label) or a text file with one `{}` template a line."""
    if choice == "default":
        return list(default)
    if choice == "none":
        return ["{}"]
    path = Path(choice)
    if not path.is_file():
        raise PixelforgeError(f"{option} {choice}: not default, none, or an existing text file of templates")
    from pixelforge.data.sources import utf8_text

    lines = [line.strip() for line in utf8_text(path).splitlines() if line.strip() and not line.startswith("#")]
    bad = [line for line in lines if not _one_label_slot(line)]
    if not lines or bad:
        raise PixelforgeError(f"{path}: each template line needs exactly one {{}} for the label and no other "
                              f"braces (write {{{{ or }}}} for a brace) "
                              f"({'no templates' if not lines else 'first bad line: ' + bad[0]!r})")
    return lines


def _one_label_slot(template: str) -> bool:
    """Whether `template.format(label)` fills exactly one `{}` and nothing else: other fields (`{x}`, a second `{}`)
    or a lone brace were a traceback once the labels were embedded; `{{` and `}}` are literal braces."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError:  # a lone brace
        return False
    return fields == [""]


def parse_labels(text: str) -> list[str]:
    """Comma-separated class names; a name holding a comma is quoted as in CSV.

    Example:
        >>> parse_labels('ant, "bee, honey", 蜂')
        ['ant', 'bee, honey', '蜂']
    """
    import csv

    # csv, not str.split: '"red, ripe apple",pear' split into '"red' and 'ripe apple"' (quotes kept); unquoted
    # names read as before, and an apostrophe or an inner quote (`5" nail`) stays part of its name.
    try:
        fields = next(csv.reader([text], skipinitialspace=True), [])
    except csv.Error:  # a line break or a stray quote inside a quoted name
        fields = text.split(",")
    labels = [label.strip() for label in fields if label.strip()]
    if len(labels) < 2:
        raise PixelforgeError(f"--labels {text!r}: give two or more comma-separated class names "
                              f"(a softmax over one name is always 1)")
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise PixelforgeError(f"--labels {text!r}: {', '.join(map(repr, twice))} given twice; give each class once")
    return labels
