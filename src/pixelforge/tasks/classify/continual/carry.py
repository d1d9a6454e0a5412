"""What one continual step hands the next: the replay memory and EWC's Fisher and anchor.

Decided here: at the end of each continual step (`ClassifyTask.after_fit`) the run's memory (its incoming memory
plus its own training images, class-balanced, `--memory` in total) and, for EWC, its Fisher (the incoming Fisher
plus the one of this step's training images under the trained model) are stored in best.ckpt and last.ckpt as
task_state["carry"]. The next step reads them from there, so it needs none of the old images' labels again, only
the memory's image files. A run trained without --continue-from (the first task) carries nothing: the first
continual step computes the same from that run's model and training data, which must then still be readable.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd
from pixelforge.tasks.classify.continual.replay import ReplayMemory


def training_samples(run: Path) -> list:
    """The run's own training images, as its config, seed and val_fraction split them."""
    from pixelforge.tasks.classify.task import prepare_data
    from pixelforge.tasks.config import load_config

    try:
        source, _ = prepare_data(load_config(Path(run) / "config.yaml"))
    except PixelforgeError as exc:  # its path is the parent's data, which the user did not type in this command
        raise PixelforgeError(f"--continue-from {run}: the first continual step re-reads that run's training data "
                              f"for its memory and Fisher, and cannot: {exc}") from None
    return source.split("train")


def _task_state(run: Path) -> dict:
    return rd.load_checkpoint(Path(run) / "checkpoints" / "best.ckpt").get("task_state") or {}


def build_memory(run: Path, size: int, seed: int, incoming: dict | None) -> dict:
    """The memory after `run`'s step: `incoming` (what it trained with) offered the run's training images."""
    memory = ReplayMemory.from_state(incoming) if incoming else ReplayMemory(size, seed)
    memory.size = size
    memory.add((s.path, s.label) for s in training_samples(run))
    return memory.state_dict()


def build_ewc(run: Path, incoming: dict | None) -> dict:
    """Online EWC after `run`'s step: the Fisher of its training images under its model, plus the incoming Fisher
    (zero-padded where the head grew); the anchor is the run's weights."""
    from torch.utils.data import DataLoader

    from pixelforge.data.dataset import ImageDataset
    from pixelforge.tasks.classify.continual.penalties import diagonal_fisher
    from pixelforge.tasks.classify.inference import load_run

    loaded = load_run(run)
    model = loaded.model.to(memory_format=torch.contiguous_format)
    dataset = ImageDataset(training_samples(run), {c: i for i, c in enumerate(loaded.classes)}, loaded.short_side,
                           loaded.transform)
    dataset.preload()
    fisher = diagonal_fisher(model, DataLoader(dataset, batch_size=64))
    for name, old in ((incoming or {}).get("fisher") or {}).items():
        fisher[name][tuple(slice(0, n) for n in old.shape)] += old
    anchor = {n: p.detach().float().clone() for n, p in model.named_parameters() if n in fisher}
    return {"fisher": fisher, "anchor": anchor}


def carry_of(run: Path, *, memory_size: int | None, ewc: bool) -> dict:
    """What `run` hands a step continuing from it: the stored carry, or, for a run without one (trained from
    scratch), the same computed now. `memory_size` None: no memory wanted; else its total size."""
    from pixelforge.tasks.config import load_config

    state = _task_state(run)
    stored_carry = state.get("carry") or {}
    carry = {}  # only what was asked for: a naive step must not replay the memory its parent stored
    if memory_size is not None:
        stored = stored_carry.get("memory") or build_memory(run, memory_size, load_config(Path(run) / "config.yaml").seed,
                                                            state.get("memory"))
        memory = ReplayMemory.from_state(stored)
        memory.size = memory_size
        memory.add([])  # a smaller --memory than the parent's cuts every class to the new quota
        carry["memory"] = memory.state_dict()
    if ewc:
        carry["ewc"] = stored_carry.get("ewc") or build_ewc(run, state.get("ewc"))
    return carry


def store_carry(run: Path, cfg) -> None:
    """After a continual step: its carry into best.ckpt and last.ckpt (atomic writes), for the next step."""
    state = _task_state(run)
    carry = {"memory": build_memory(run, cfg.memory, cfg.seed, state.get("memory"))}
    if cfg.continual == "ewc":
        carry["ewc"] = build_ewc(run, state.get("ewc"))
    for name in ("best.ckpt", "last.ckpt"):
        path = Path(run) / "checkpoints" / name
        if path.exists():
            saved = rd.load_checkpoint(path)
            saved["task_state"] = {**(saved.get("task_state") or {}), "carry": carry}
            rd.save_checkpoint(saved, path)
