"""`pixelforge train --help`: made from the config classes, so every task's keys, choices and defaults are there."""

from __future__ import annotations

import re

import pytest
import typer

from pixelforge.cli import app
from pixelforge.tasks.registry import TASKS


@pytest.fixture(scope="module")
def train_help() -> dict[str, str]:
    """{option name: its help text} of `pixelforge train`."""
    command = typer.main.get_command(app).commands["train"]
    return {param.opts[0]: param.help or "" for param in command.params}


def test_every_task_is_listed_by_task_and_by_data(train_help):
    for name, cls in TASKS.items():
        assert re.search(rf"\b{name}\b", train_help["--task"]), name
        assert f"{name}: {cls.description}" in train_help["--data"], name


def _clause(help_text: str, task: str) -> str:
    """The part of a help that speaks for `task`: the clause that names it, else the one for every task."""
    names = "|".join(TASKS)
    prefix = rf"(?:(?:{names})(?:, )?)+: "
    clauses = re.split(rf"; (?={prefix})", help_text.rstrip("."))
    named = [c for c in clauses if re.match(prefix, c) and task in re.match(prefix, c).group(0)[:-2].split(", ")]
    unnamed = [c for c in clauses if not re.match(prefix, c)]
    return (named or unnamed or [""])[0]


def _defaults_to_check():
    skip = {"task", "data"}  # their help is the registry's list, checked above
    for task_name, cls in sorted(TASKS.items()):
        for key, info in cls.config_class.model_fields.items():
            default = info.default
            if key in skip or default is None or isinstance(default, bool) or default == "" or callable(default):
                continue
            yield task_name, key, info


def test_each_task_s_default_is_in_the_clause_for_that_task(train_help):
    """A key several tasks declare with different defaults (denoise's 6 crops per image, compress's 8; segment's
    ce+dice loss, gan's hinge) shows each task its own; before, the first task's default stood for all."""
    checked = 0
    for task_name, key, info in _defaults_to_check():
        flag = "--" + (info.alias or key).replace("_", "-")
        if flag not in train_help:
            continue  # YAML-only keys
        clause = _clause(train_help[flag], task_name)
        assert f"(default {info.default})" in clause, (task_name, flag, train_help[flag])
        checked += 1
    assert checked > 50


def test_a_task_s_choices_are_in_its_help(train_help):
    """compress's --model is its codec (factorized | hyperprior), not a backbone; segment's --loss choices too."""
    assert "hyperprior" in _clause(train_help["--model"], "compress")
    assert "focal+dice" in _clause(train_help["--loss"], "segment")
    assert "focal" not in _clause(train_help["--loss"], "gan")


def test_helps_do_not_repeat_themselves(train_help):
    for flag, text in train_help.items():
        assert not re.search(r"\b(\w+): \1:", text), (flag, text)
        assert "(default )" not in text, flag
        words = re.findall(r"\w+(?: \| \w+)+", text)
        assert len(words) == len(set(words)), (flag, text)  # a choice list said once
