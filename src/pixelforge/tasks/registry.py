"""The task registry: the one place that maps a task's name (`--task detect`) to the code that implements it.

A dict and a decorator that refuses duplicates, as torchvision's model registry; the built-in tasks are imported
explicitly by `pixelforge/tasks/__init__.py` (which Python runs before this module), so nothing registers itself
by accident. Everything above the tasks layer
(the API, the CLI, export, serving, video) asks `get_task(name)` and calls the task's methods; nothing else in
pixelforge compares task names.

Adding a task (see ARCHITECTURE.md): subclass `Task`, decorate it with `@register_task`, import it. A test module
can do exactly that and train it through `pixelforge.train(..., task="mytask")`.
"""

from __future__ import annotations

from pixelforge.errors import PixelforgeError
from pixelforge.tasks.base import Task

TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make `cls` reachable as `--task cls.name`.

    Example:
        >>> @register_task
        ... class Toy(Task):
        ...     name = "toy-doc"
        >>> get_task("toy-doc").name
        'toy-doc'
    """
    if not cls.name:
        raise ValueError(f"{cls.__name__}: a task needs a `name`")
    if cls.name in TASKS and TASKS[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} is already registered by {TASKS[cls.name].__qualname__}")
    TASKS[cls.name] = cls
    return cls


def unregister_task(name: str) -> None:
    """Remove a task (tests register toy tasks and clean up after themselves)."""
    TASKS.pop(name, None)


def task_names() -> list[str]:
    return sorted(TASKS)


def get_task(name: str | None) -> Task:
    """An instance of the task registered as `name` (None means classify, the default task)."""
    name = name or "classify"
    if name not in TASKS:
        raise PixelforgeError(f"task: unknown task {name!r}; choose {', '.join(sorted(TASKS))} (a task of your own "
                              f"module: name the module in {PLUGINS_VARIABLE}, see ARCHITECTURE.md)")
    return TASKS[name]()


PLUGINS_VARIABLE = "PIXELFORGE_PLUGINS"


def import_plugins(modules: str) -> None:
    """Import the comma-separated `modules` (the PIXELFORGE_PLUGINS variable) so that the tasks they register reach
    the `pixelforge` command as the built-in ones do: an explicit list, not entry points found behind the user's
    back. A module that cannot be imported is a warning: its tasks are then unknown, which get_task says."""
    import importlib
    import logging

    for module in filter(None, (name.strip() for name in modules.split(","))):
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any failure in the user's module: say which, keep the built-ins
            logging.getLogger("pixelforge").warning("%s: cannot import %r (%s: %s); its tasks are unknown",
                                                    PLUGINS_VARIABLE, module, type(exc).__name__, exc)
