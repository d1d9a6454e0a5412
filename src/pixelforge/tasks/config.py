"""Building and reading a run's config: the shared `RunConfig` extended by the task's own class, chosen by `task`.

The task classes form a pydantic discriminated union on `task`, built from the registry, so a task registered
by a user (or a test) gets its own validated keys too. A key that belongs to another task (`--task segment
--balance classes`) fails with one line naming the key and the task, instead of being silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Union

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from pixelforge.config import RunConfig, describe_errors, read_config_file
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.registry import TASKS, get_task


def config_union() -> TypeAdapter:
    """A TypeAdapter for the union of every registered task's config class, discriminated by `task`."""
    classes = tuple(cls.config_class for cls in TASKS.values())
    union = classes[0] if len(classes) == 1 else Annotated[Union[classes], Field(discriminator="task")]
    return TypeAdapter(union)


def build_config(config_file: str | Path | None = None, *, inherited: dict | None = None, **overrides) -> RunConfig:
    """Merge a YAML file with explicit overrides (None means "not given"), apply the task's defaults, validate.

    `inherited` (a continual step's parent run's keys) lies under the file and the overrides, over the defaults.

    Example:
        >>> build_config(data="digits", epochs=2).epochs
        2
    """
    values = dict(inherited or {})
    values.update(read_config_file(config_file) if config_file else {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    task = get_task(values.get("task"))  # one line for an unknown task, with the known ones
    values = {**task.fixed, **task.defaults, **values, "task": task.name}  # a fixed key is a default too
    if "data" not in values:
        raise PixelforgeError("data: required; pass --data DIR_OR_CSV or set data: in the config file")
    try:
        return config_union().validate_python(values)
    except ValidationError as exc:
        where = f"{config_file}: " if config_file else ""
        raise PixelforgeError(where + describe_errors(exc, task.config_class, task.name)) from None


def load_config(path: Path) -> RunConfig:
    """A run's saved config.yaml. Keys its task no longer has are dropped: older runs saved every task's keys. A key the
    task never read (`Task.fixed`) reads as the value it trained with, whatever an older run saved (`--task gan` saved
    `val_fraction: 0.2` before it was fixed), and a key its config did not read (`Task.unread`: `lr_find_steps` without
    `lr: auto`) as the default, so such a run still resumes, evaluates and exports."""
    values = yaml.safe_load(Path(path).read_text()) or {}
    task = get_task(values.get("task"))
    cls = task.config_class
    cfg = cls(**{**{k: v for k, v in values.items() if k in cls.model_fields}, **task.fixed})
    unread = {key: task.default(cfg, key) for key in task.unread(cfg)}  # never read: as if the run had left it out
    return cfg.model_copy(update=unread) if unread else cfg
