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


class FreshProcess:
    """One side run in a new interpreter (spawned), its memory measured there, after its imports.

    The plain baselines of B1-B3 run this way, as a user's script would: `pixelforge train` changes process-wide
    settings (glibc malloc thresholds, `engine/cpu_memory.py`; flush-to-zero) that would otherwise carry over to a
    baseline run later in the same process and change its speed and memory. `fn` and `args` must pickle.
    """

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __call__(self) -> dict:
        import multiprocessing

        # The child is spawned (a fork would inherit this process's settings), but a spawned child also makes
        # "spawn" its own default start method, so its DataLoader workers would be spawned interpreters importing
        # torch at every epoch. The child gets this platform's default back (fork on Linux), as a user's script has.
        default = multiprocessing.get_start_method()
        if _shared_child:
            return _shared_child[0].submit(_measured_in_child, default, self.fn, *self.args).result()
        with _spawned_child() as pool:
            return pool.submit(_measured_in_child, default, self.fn, *self.args).result()


_shared_child: list = []  # the one spawned child of `shared_fresh_process`, while it is open


def _spawned_child():
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))


@contextmanager
def shared_fresh_process(enabled: bool):
    """Inside, every `FreshProcess` side runs in one spawned child instead of a new one each (`--smoke`).

    Each new interpreter imports torch, torchvision and timm again (~5 s of CPU), which was half of the smoke run.
    The plain sides leave no process-wide setting behind for the next (only pixelforge's side sets any, and it runs
    in this process), so sharing keeps the code path; the full run keeps a new interpreter per side all the same, so
    no side's memory or speed depends on what ran before it.
    """
    if not enabled:
        yield
        return
    with _spawned_child() as pool:
        _shared_child.append(pool)
        try:
            yield
        finally:
            _shared_child.clear()


def _measured_in_child(start_method: str, fn, *args) -> dict:
    import multiprocessing

    multiprocessing.set_start_method(start_method, force=True)
    import os

    return {**_measured_record(fn, *args), "fresh_process": True, "pid": os.getpid()}


def _measured_record(fn, *args) -> dict:
    result, memory = measure(fn, *args)
    return {"result": result, "rss_added_mb": memory.added_mb, "rss_peak_mb": memory.peak_mb,
            "rss_start_mb": round(memory.start_mb, 1)}


def alternate(baseline_fn, pixelforge_fn, repeats: int, say=print) -> list[dict]:
    """Run both sides `repeats` times, swapping which goes first each time (drift hits both).

    A side is a function run (and measured) in this process, or a `FreshProcess`.
    """
    runs = []
    for index in range(repeats):
        sides = [("baseline", baseline_fn), ("pixelforge", pixelforge_fn)]
        if index % 2:
            sides.reverse()
        run = {}
        for name, fn in sides:
            started = time.perf_counter()
            run[name] = record = fn() if isinstance(fn, FreshProcess) else _measured_record(fn)
            say(f"    {name:<10} done in {time.perf_counter() - started:6.1f} s "
                f"(peak RSS {record['rss_peak_mb']:.0f} MB, {record['rss_added_mb']:+.0f} MB over its start"
                f"{', fresh process' if record.get('fresh_process') else ''})")
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
