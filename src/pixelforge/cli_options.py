"""`pixelforge train`'s options, made from the config classes: one option per key of the shared `RunConfig` and of
every registered task's config, with the key's type, its description as help, and the tasks it belongs to.

So an option cannot drift from the key it sets (the name, the type and the help are declared once, in the
model), and a new task's keys appear on the command line without editing the CLI. Values are parsed here only
where a shell string is not the key's type (comma lists, `--lr auto`); validation stays pydantic's.
"""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Literal, Optional

import typer

from pixelforge.errors import PixelforgeError

YAML_ONLY = {"augment_options"}  # nested mappings: set them in the --config file


def config_fields() -> dict[str, object]:
    """{key: pydantic FieldInfo}: a key several tasks declare is typed and parsed by its first declaration."""
    return {name: variants[0][0] for name, variants in task_fields().items()}


def task_fields() -> dict[str, list[tuple[object, list[str]]]]:
    """{key: [(FieldInfo, names of the tasks that declare it so), ...]}: one entry per distinct description and
    default (`--loss` is gan's hinge and segment's ce+dice); a `RunConfig` key's first entry has tasks [] (every
    task but those listed after it: compress's `--model` is its codec)."""
    from pixelforge.config import RunConfig
    from pixelforge.tasks.registry import TASKS

    fields: dict[str, list[tuple[object, list[str]]]] = {name: [(info, [])] for name, info in RunConfig.model_fields.items()}
    for cls in sorted(TASKS.values(), key=lambda c: c.name):
        for name, info in cls.config_class.model_fields.items():
            variants = fields.setdefault(name, [])
            same = [tasks for other, tasks in variants if _says_the_same(other, info)]
            if not same:
                variants.append((info, [cls.name]))
            elif name not in RunConfig.model_fields:  # a shared key's tasks stay [] (every task)
                same[0].append(cls.name)
    return {name: value for name, value in fields.items() if name not in YAML_ONLY}


def _says_the_same(a, b) -> bool:
    return (a.description, a.default, a.annotation) == (b.description, b.default, b.annotation)


def _members(annotation) -> list:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _literals(members: list) -> list[str]:
    return [str(v) for m in members if typing.get_origin(m) is Literal for v in typing.get_args(m)]


def option_type(annotation) -> type:
    """The type Typer parses the shell string into: bool, int, float or str (lists and unions arrive as text)."""
    members = _members(annotation)
    if members == [bool]:
        return bool
    if len(members) == 1 and members[0] in (int, float, str):
        return members[0]
    return str


def parse_value(name: str, text, annotation):
    """A shell string for a key whose type Typer cannot parse: comma-separated lists, numbers or a keyword."""
    if text is None or not isinstance(text, str):
        return text
    members = _members(annotation)
    lists = [m for m in members if typing.get_origin(m) is list]
    if lists:
        kind = typing.get_args(lists[0])[0]
        try:
            return [kind(part) for part in text.replace(" ", "").split(",") if part]
        except ValueError:
            raise PixelforgeError(f"--{_flag(name)} {text!r}: give comma-separated numbers such as 16,32,64") from None
    numbers = [m for m in members if m in (int, float)]
    if numbers and text not in _literals(members):
        try:
            return numbers[0](text)
        except ValueError:
            words = " or ".join(_literals(members))
            raise PixelforgeError(f"--{_flag(name)} {text!r}: give a number such as 1e-3" + (f", or {words}" if words else "")) from None
    return text


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _help_one(info, tasks: list[str]) -> str:
    text = (info.description or "").rstrip(".")
    choices = _literals(_members(info.annotation))
    if choices and not all(choice in text for choice in choices):
        text = (text + ": " if text else "") + " | ".join(choices)
    default = info.default
    if default is not None and not isinstance(default, bool) and not callable(default) and default != "":
        text += f" (default {default})"
    return f"{', '.join(tasks)}: {text}" if tasks else text


def _help(variants: list[tuple[object, list[str]]]) -> str:
    """One key's help: each task's description and default, tasks that say the same thing sharing one clause."""
    return "; ".join(_help_one(info, tasks) for info, tasks in variants) + "."


def task_help(info) -> str:
    """`--task`: the registry's names, so a new task is listed without editing the description."""
    from pixelforge.tasks.registry import TASKS

    return f"{info.description}: {' | '.join(sorted(TASKS))} (default {info.default})."


def data_help() -> str:
    """`--data`: what each task reads, from the registry (the `pixelforge tasks` listing)."""
    from pixelforge.tasks.registry import TASKS

    return "what to learn from, by task; " + "; ".join(f"{name}: {cls.description}" for name, cls in sorted(TASKS.items())) + "."


def train_parameters(explicit: dict[str, inspect.Parameter]) -> list[inspect.Parameter]:
    """`explicit` parameters (data, config, resume) first, then one keyword option per config key."""
    params = list(explicit.values())
    for name, variants in task_fields().items():
        if name in explicit:
            continue
        info = variants[0][0]
        kind = option_type(info.annotation)
        flag = _flag(info.alias or name)  # `lambda_` (a Python keyword) is `--lambda`
        decls = [f"--{flag}/--no-{flag}"] if kind is bool else [f"--{flag}"]
        help_text = _help(variants) if name != "task" else task_help(info)
        option = typer.Option(None, *decls, help=help_text, show_default=False)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[kind]))
    return params


def train_options(values: dict) -> dict:
    """The options a user gave (None = not given), parsed into the keys' types where Typer could not."""
    fields = config_fields()
    return {k: parse_value(k, v, fields[k].annotation) for k, v in values.items() if v is not None and k in fields}


def explicit_train_parameters() -> dict[str, inspect.Parameter]:
    keyword = inspect.Parameter.KEYWORD_ONLY
    return {
        "data": inspect.Parameter("data", keyword, annotation=Optional[str],
                                  default=typer.Option(None, help=data_help())),
        "config": inspect.Parameter("config", keyword, annotation=Optional[Path], default=typer.Option(
            None, help="YAML file with any of these options; the command line wins.")),
        "resume": inspect.Parameter("resume", keyword, annotation=Optional[Path], default=typer.Option(
            None, help="Continue an interrupted run folder where it stopped.")),
    }
