"""The architecture as tests: imports only point down the layers (function-local imports included), tasks never
import each other, and nothing outside the task registry compares task names. ARCHITECTURE.md draws the same map."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pixelforge"

# Lowest first. A module belongs to the longest prefix listed here; it may import its own layer's modules and any
# lower layer's, never a higher one's.
LAYERS: list[list[str]] = [
    ["errors", "output_names", "formats"],  # formats: which pixelforge wrote a run or package
    ["data", "models", "deploy.runtime"],
    ["metrics", "viz"],
    ["config", "runs"],
    ["engine", "deploy.export", "explain"],  # explain: heat maps and their faithfulness, for any classifier
    ["tasks.base", "tasks.registry", "tasks.config", "tasks.common"],
    ["tasks.*"],  # one folder per task: tasks.classify, tasks.detect, ... (never each other)
    ["tasks"],  # the package's __init__: imports the built-in tasks, which registers them
    ["api"],
    ["tune"],  # hyper-parameter and architecture search: trials are api.train runs
    ["explain.commands", "deploy.serve", "deploy.video", "deploy.commands", "deploy"],
    ["cli", "commands", ""],  # "" is pixelforge/__init__.py: the lazy API entry points
]
SHARED_TASK_MODULES = {"base", "registry", "config", "common"}
TASK_RANK = next(i for i, names in enumerate(LAYERS) if "tasks.*" in names)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str, importing: bool = False) -> tuple[int, str]:
    """(rank, the prefix that placed it) of a module name relative to the package ("tasks.detect.evaluate").

    The package itself ("") sits on top, since its lazy entry points import the API; but what other modules import
    from it (`__version__`) needs nothing, so as an import target it counts as the lowest layer."""
    if module == "" and importing:
        return 0, "pixelforge"
    parts = module.split(".") if module else []
    if len(parts) >= 2 and parts[0] == "tasks" and parts[1] not in SHARED_TASK_MODULES:
        return next(i for i, names in enumerate(LAYERS) if "tasks.*" in names), f"tasks.{parts[1]}"
    for length in range(len(parts), -1, -1):
        prefix = ".".join(parts[:length])
        for rank, names in enumerate(LAYERS):
            if prefix in names:
                return rank, prefix
    raise AssertionError(f"pixelforge.{module} is in no layer: add it to LAYERS in {__file__}")


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module relative to the package) of every pixelforge import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pixelforge":
            base = node.module.split(".", 1)[1] if "." in node.module else ""
            for alias in node.names:  # `from pixelforge.tasks import classify` imports the module tasks.classify
                candidate = f"{base}.{alias.name}" if base else alias.name
                target = candidate if _is_module(candidate) else base
                found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".", 1)[1] if "." in a.name else "")
                      for a in node.names if a.name.split(".")[0] == "pixelforge"]
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def layering_violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        rank, prefix = layer_of(source)
        for line, target in sorted(set(imports_of(path))):
            target_rank, target_prefix = layer_of(target, importing=True)
            where = f"{path.relative_to(PACKAGE.parent)}:{line} pixelforge.{source} imports pixelforge.{target}"
            if target_rank > rank:
                problems.append(f"{where}: points up ({target_prefix} is above {prefix or 'pixelforge'})")
            elif target_rank == rank == TASK_RANK and target_prefix != prefix:
                problems.append(f"{where}: one task imports another (move what they share to tasks.common)")
    return problems


def test_every_import_points_down_the_layers_and_tasks_do_not_import_each_other():
    assert layering_violations() == []


def test_the_layering_check_catches_an_upward_and_a_cross_task_import(tmp_path, monkeypatch):
    # The check itself must be able to fail: an engine module importing a task, and one task importing another.
    assert layer_of("engine.loop")[0] < layer_of("tasks.detect.task")[0]
    assert layer_of("tasks.instance.task")[1] != layer_of("tasks.detect.task")[1]
    fake = tmp_path / "pixelforge"
    (fake / "engine").mkdir(parents=True)
    (fake / "tasks" / "instance").mkdir(parents=True)
    (fake / "tasks" / "detect").mkdir(parents=True)
    for folder in (fake, fake / "engine", fake / "tasks", fake / "tasks" / "instance", fake / "tasks" / "detect"):
        (folder / "__init__.py").write_text("")
    (fake / "tasks" / "detect" / "task.py").write_text("")
    (fake / "engine" / "loop.py").write_text("def f():\n    from pixelforge.tasks.detect import task\n")
    (fake / "tasks" / "instance" / "task.py").write_text("from pixelforge.tasks.detect.task import x\n")
    import sys

    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    problems = layering_violations()
    assert any("engine.loop imports pixelforge.tasks.detect.task: points up" in p for p in problems)
    assert any("one task imports another" in p for p in problems)


# `task == "detect"`, `task in ("detect", ...)`, JavaScript's `task === "segment"`: choosing behaviour by task name.
TASK_COMPARISON = re.compile(r"""\btask\w*\s*(==|!=)|\btask\w*\s+(not\s+)?in\s*[\(\[\{]|\.task\s*(==|!=)""")


def test_nothing_outside_the_registry_compares_task_names():
    hits = []
    for path in sorted(p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".html", ".js")):
        if path.name == "registry.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if TASK_COMPARISON.search(line.split("#")[0] if path.suffix == ".py" else line):
                hits.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert hits == []
