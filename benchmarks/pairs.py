"""Running a pair fairly and recording it: alternate the sides, measure peak memory, compute the ratio."""

from __future__ import annotations

import logging
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from benchmarks.memory import PeakRSS


@dataclass
class Row:
    case: str  # "B1", "B2", ... or "L1", ... for a single lever
    metric: str
    unit: str
    higher_is_better: bool
    baseline_name: str
    pixelforge_name: str
    baseline: float | None = None
    pixelforge: float | None = None
    goal: float | None = None  # the ratio the issue asks for
    baseline_rss_mb: float | None = None  # B4: peak RSS above the side's start (process + DataLoader workers)
    pixelforge_rss_mb: float | None = None
    repeats: list = field(default_factory=list)
    details: dict = field(default_factory=dict)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """How many times better pixelforge is (>1 = faster / more throughput)."""
        if not self.baseline or not self.pixelforge:
            return None
        return self.pixelforge / self.baseline if self.higher_is_better else self.baseline / self.pixelforge

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items()}
        out["ratio"] = None if self.ratio is None else round(self.ratio, 2)
        out["goal_met"] = None if self.goal is None or self.ratio is None else self.ratio >= self.goal
        return out


def measure(fn, *args, **kwargs) -> tuple[dict, PeakRSS]:
    """Run one side; return (its result dict, its memory record)."""
    with PeakRSS() as memory:
        result = fn(*args, **kwargs)
    return result, memory


def alternate(baseline_fn, pixelforge_fn, repeats: int, say=print) -> list[dict]:
    """Run both sides `repeats` times in this process, swapping which goes first each time (drift hits both)."""
    runs = []
    for index in range(repeats):
        sides = [("baseline", baseline_fn), ("pixelforge", pixelforge_fn)]
        if index % 2:
            sides.reverse()
        run = {}
        for name, fn in sides:
            started = time.perf_counter()
            result, memory = measure(fn)
            run[name] = {"result": result, "rss_added_mb": memory.added_mb, "rss_peak_mb": memory.peak_mb,
                         "rss_start_mb": round(memory.start_mb, 1)}
            say(f"    {name:<10} done in {time.perf_counter() - started:6.1f} s "
                f"(peak RSS {memory.peak_mb:.0f} MB, {memory.added_mb:+.0f} MB over its start)")
        runs.append(run)
    return runs


def fill(row: Row, runs: list[dict], value) -> Row:
    """Set the row's values to the median over repeats of `value(result)` for each side, and its peak RSS."""
    for side in ("baseline", "pixelforge"):
        values = [value(run[side]["result"]) for run in runs]
        values = [v for v in values if v is not None]
        setattr(row, side, round(statistics.median(values), 3) if values else None)
        setattr(row, f"{side}_rss_mb", max(run[side]["rss_added_mb"] for run in runs))
    row.repeats = runs
    return row


class TargetTimer:
    """A pixelforge callback noting the wall time at which validation accuracy first reaches `target`."""

    def __init__(self, target: float):
        self.target = target
        self.started = time.perf_counter()
        self.reached_s: float | None = None
        self.reached_epoch: int | None = None
        self.epochs: list[dict] = []

    def on_epoch_end(self, state, row: dict) -> None:
        elapsed = time.perf_counter() - self.started
        self.epochs.append({"epoch": int(row["epoch"]), "val_acc": row["val_acc"], "elapsed_s": round(elapsed, 2)})
        if self.reached_s is None and row["val_acc"] >= self.target:
            self.reached_s, self.reached_epoch = round(elapsed, 2), int(row["epoch"])


@contextmanager
def captured_log(name: str = "pixelforge"):
    """Collect the INFO lines a quiet pixelforge run logs (which path and engine it chose), printing none."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger(name)
    handler, level, propagate = Keep(logging.INFO), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
