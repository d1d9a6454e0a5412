"""The replay memory: a class-balanced reservoir of old training images (paths and labels).

Rehearsal of a small episodic memory is the strong baseline of continual learning: Rebuffi et al. 2017 (iCaRL)
keep a fixed total budget shared equally by the classes seen so far; Chaudhry et al. 2019 ("On Tiny Episodic
Memories") fill it by reservoir sampling (Vitter 1985), which keeps a uniform sample of a stream without storing
it. Here each class has its own reservoir and the budget `size` is split equally between the classes, so when
new classes arrive each old class gives up memory (its reservoir is cut to a random subset of the new quota's
size, which keeps it a uniform sample). Seeded: the same data and seed give the same memory.

Example:
    >>> from pathlib import Path
    >>> memory = ReplayMemory(4, seed=0)
    >>> memory.add([(Path(f"{c}{i}.png"), c) for c in "ab" for i in range(10)])
    >>> sorted(memory.counts().items())
    [('a', 2), ('b', 2)]
"""

from __future__ import annotations

import random
from pathlib import Path


class ReplayMemory:
    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.seed = seed
        self.slots: dict[str, list[str]] = {}  # class -> kept paths (its reservoir)
        self.seen: dict[str, int] = {}  # class -> images offered so far (the reservoir's stream length)
        self._rng = random.Random(seed)

    def quota(self, n_classes: int | None = None) -> int:
        """Places per class: the total split equally (at least one, so no seen class is forgotten outright)."""
        return max(1, self.size // max(1, n_classes or len(self.slots)))

    def add(self, items) -> None:
        """Offer (path, label) pairs; each class keeps a uniform sample of all its images offered so far."""
        items = list(items)
        for _, label in items:
            self.slots.setdefault(label, [])
            self.seen.setdefault(label, 0)
        quota = self.quota()
        for slots in self.slots.values():  # new classes shrink every old class's share
            if len(slots) > quota:  # a random subset of a uniform sample is a uniform sample (a prefix is not)
                slots[:] = self._rng.sample(slots, quota)
        for path, label in items:
            slots = self.slots[label]
            self.seen[label] += 1
            if len(slots) < quota:
                slots.append(str(path))
            else:  # reservoir sampling: the n-th image replaces a random slot with probability quota / n
                j = self._rng.randrange(self.seen[label])
                if j < quota:
                    slots[j] = str(path)

    def items(self) -> list[tuple[Path, str]]:
        return [(Path(p), label) for label, paths in sorted(self.slots.items()) for p in paths]

    def counts(self) -> dict[str, int]:
        return {label: len(paths) for label, paths in self.slots.items()}

    def __len__(self) -> int:
        return sum(len(p) for p in self.slots.values())

    def state_dict(self) -> dict:
        return {"size": self.size, "seed": self.seed, "slots": {k: list(v) for k, v in self.slots.items()},
                "seen": dict(self.seen), "rng": self._rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        self.size, self.seed = state["size"], state["seed"]
        self.slots = {k: list(v) for k, v in state["slots"].items()}
        self.seen = dict(state["seen"])
        rng = state["rng"]  # torch.load gives lists where getstate gave tuples
        self._rng.setstate((rng[0], tuple(rng[1]), rng[2]))

    @classmethod
    def from_state(cls, state: dict) -> "ReplayMemory":
        memory = cls(state["size"], state["seed"])
        memory.load_state_dict(state)
        return memory
