"""Building and reading a run's config: the shared `RunConfig` extended by the task's own class, chosen by `task`.

The task classes form a pydantic discriminated union on `task`, built from the registry, so a task registered
by a user (or a test) gets its own validated keys too. A key that belongs to another task (`--task segment
--balance classes`) fails with one line naming the key and the task, instead of being silently ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Union

from pydantic import Field, TypeAdapter, ValidationError

from pixelforge.config import RunConfig, describe_errors, read_config_file
from pixelforge.errors import PixelforgeError
from pixelforge.formats import RUN_STAMP_KEYS, check_format, written_by
from pixelforge.tasks.registry import TASKS, get_task

log = logging.getLogger("pixelforge")
_WARNED: set[tuple[str, tuple[str, ...]]] = set()  # (config.yaml, its unknown keys) already warned of


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
    values.update(_without_stamp(config_file, read_config_file(config_file)) if config_file else {})
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


def _without_stamp(path, values: dict) -> dict:
    """A config file's keys without the stamp of the pixelforge that wrote it (a run's config.yaml given as --config);
    one a newer pixelforge wrote is refused in one line."""
    check_format(path, values, "run")
    return {k: v for k, v in values.items() if k not in RUN_STAMP_KEYS}


def load_config(path: Path) -> RunConfig:
    """A run's saved config.yaml. Keys its task no longer has are dropped: older runs saved every task's keys. A key the
    task never read (`Task.fixed`) reads as the value it trained with, whatever an older run saved (`--task gan` saved
    `val_fraction: 0.2` before it was fixed), and a key its config did not read (`Task.unread`: `lr_find_steps` without
    `lr: auto`) as the default, so such a run still resumes, evaluates and exports.

    A key this pixelforge has not got (one a later version removed, or a hand edit) is dropped with a warning naming
    it; a key added since the run was written takes its default, the behaviour of the version that wrote the run. A
    config.yaml of a newer run format, or a value this version refuses, is one line naming the writer."""
    values = read_config_file(path)
    check_format(path, values, "run")
    task = get_task(values.get("task"))
    cls = task.config_class
    known = {key for other in TASKS.values() for key in other.config_class.model_fields} | set(RUN_STAMP_KEYS)
    unknown = [key for key in values if key not in known]
    if unknown and (str(Path(path).resolve()), tuple(unknown)) not in _WARNED:  # a command reads it more than once
        _WARNED.add((str(Path(path).resolve()), tuple(unknown)))
        log.warning("%s: ignoring %s, not %s of this pixelforge (the run was written by %s)", path,
                    ", ".join(map(repr, unknown)), "options" if len(unknown) > 1 else "an option", written_by(values))
    try:
        cfg = cls(**{**{k: v for k, v in values.items() if k in cls.model_fields}, **task.fixed})
    except ValidationError as exc:
        raise PixelforgeError(f"{path}: {describe_errors(exc, cls, task.name)}; the run was written by "
                              f"{written_by(values)}, which allowed it: evaluate it with that version, or edit the "
                              f"value in {path}") from None
    unread = {key: task.default(cfg, key) for key in task.unread(cfg)}  # never read: as if the run had left it out
    return cfg.model_copy(update=unread) if unread else cfg
