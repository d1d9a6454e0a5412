"""What every `evaluate` returns, whatever the task: the metrics, where the figures went, and what was unreadable."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EvalResult:
    metrics: dict
    out_dir: Path
    figures: dict = field(default_factory=dict)
    unreadable: list = field(default_factory=list)
    task: str = ""  # the task that scored the run (`pixelforge.evaluate` sets it): `evaluate --json`'s "task"

    @property
    def accuracy(self) -> float:  # classification's headline number
        return self.metrics["accuracy"]

    @property
    def miou(self) -> float | None:  # segmentation's
        return self.metrics["miou"]

    def to_json(self) -> dict:
        """What `pixelforge evaluate --json` prints: `task`, the task's metrics (with `split`, the split scored,
        where the task scores one), `figures` and `unreadable_images`."""
        return {**({"task": self.task} if self.task else {}), **self.metrics,
                "figures": {k: str(v) for k, v in self.figures.items()},
                "unreadable_images": self.unreadable}
