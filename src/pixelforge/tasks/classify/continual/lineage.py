"""The parent run of a continual step: checking it, the grown class list, the grown model, and lineage.json.

Class-incremental: the parent's classes keep their indices and the new data's new classes are appended (sorted),
so the head grows by rows and the parent's rows are copied. Data with no new class is domain-incremental: the
head stays as it is. The parent run folder is only ever read.

lineage.json lists every step of the sequence, first task first: its run folder, data, strategy and the classes
it added; `pixelforge evaluate` and the accuracy matrix (sequence.py) read each step's test images from it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd

LINEAGE_FILE = "lineage.json"


def parent_run(cfg) -> Path:
    """The parent run folder of a continual config; a one-line error when it is not a classification run."""
    from pixelforge.tasks.config import load_config

    run = rd.require_run(cfg.continue_from)
    parent = load_config(run / "config.yaml")
    if not isinstance(parent, type(cfg)):  # a detector's run, say: its head is not a class list
        raise PixelforgeError(f"{run}: a {parent.task!r} run; --continue-from needs a {cfg.task!r} run")
    if not (run / "checkpoints" / "best.ckpt").exists():
        raise PixelforgeError(f"{run}: no checkpoints/best.ckpt; finish (resume) that run before continuing from it")
    for key in ("model", "img_size"):
        if getattr(parent, key) != getattr(cfg, key):
            raise PixelforgeError(f"{run}: trained with {key} {getattr(parent, key)!r}, not {getattr(cfg, key)!r}; "
                                  f"a continual step keeps the parent's {key} (leave --{key.replace('_', '-')} out)")
    return run


def grown_classes(parent_classes: list[str], new_labels, origin=None, parent=None) -> list[str]:
    """The parent's classes in their order, then the classes only the new data has, sorted.

    A new class named as a parent's class but for its case (`Red` after `red`: a renamed folder, or a copy from a
    case-insensitive disk) is refused: it would become a class of its own, and the parent's class would not be
    trained on its images. `origin` and `parent` name the data and the parent run in that line.

    Example:
        >>> grown_classes(["0", "1"], {"3", "2", "1"})
        ['0', '1', '2', '3']
    """
    added = sorted(set(new_labels) - set(parent_classes))
    folded = {name.casefold(): name for name in parent_classes}
    for name in added:
        if name.casefold() in folded:
            old = folded[name.casefold()]
            raise PixelforgeError(f"{origin}: class {name!r} differs only in case from the class {old!r} of the parent "
                                  f"run {parent}; name it {old!r} to train that class, or a name of its own for a "
                                  f"new class")
    return list(parent_classes) + added


def grow_state(state: dict, model_state: dict) -> dict:
    """The parent's weights for a model whose head has more rows: every tensor copied; a grown one (the head's
    weight and bias) gets the parent's values in its first rows and keeps its fresh initialisation in the rest."""
    grown = {}
    for name, target in model_state.items():
        old = state[name]
        if old.shape == target.shape:
            grown[name] = old
        else:
            value = target.clone()
            value[tuple(slice(0, n) for n in old.shape)] = old
            grown[name] = value
    return grown


def load_parent_model(run: Path, model: torch.nn.Module) -> torch.nn.Module:
    """`model` (built for the grown class list) with the parent's best.ckpt weights."""
    saved = rd.load_checkpoint(run / "checkpoints" / "best.ckpt")
    model.load_state_dict(grow_state(saved["model"], model.state_dict()))
    return model


def data_ref(data: str) -> str:
    """A data folder or CSV as an absolute path (the sequence is read from other working folders later); a
    built-in name as it is."""
    return str(Path(data).resolve()) if Path(data).exists() else data


def read_lineage(run: Path) -> list[dict]:
    """The steps that made `run`, first task first; a run trained from scratch is a one-step sequence."""
    from pixelforge.tasks.config import load_config

    run = Path(run)
    if (run / LINEAGE_FILE).exists():
        return rd.read_json(run / LINEAGE_FILE)["steps"]
    cfg = load_config(run / "config.yaml")
    return [{"run": str(run.resolve()), "data": data_ref(cfg.data), "strategy": None,
             "classes": rd.read_json(run / "classes.json"), "new_classes": rd.read_json(run / "classes.json")}]


def write_lineage(run: Path, cfg, classes: list[str]) -> list[dict]:
    """RUN/lineage.json: the parent's steps plus this one."""
    parent = Path(cfg.continue_from)
    steps = read_lineage(parent)
    before = steps[-1]["classes"]
    steps = steps + [{"run": str(Path(run).resolve()), "data": data_ref(cfg.data), "strategy": cfg.continual,
                      "classes": classes, "new_classes": [c for c in classes if c not in before]}]
    rd.write_json(run / LINEAGE_FILE, {"parent": str(parent.resolve()), "strategy": cfg.continual,
                                       "memory": cfg.memory if cfg.continual == "replay" else None, "steps": steps})
    return steps
