"""Progress display: a rich bar with loss, accuracy (tasks that have one) and images/s per epoch, or plain log lines
with --quiet.

Off a terminal (stderr into a file, a pipe, CI) there is no bar: a live bar there wrote a blank line each time it
stopped, and rich wrapped every line at 80 columns. The same lines come plain, one a message, unwrapped."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

log = logging.getLogger("pixelforge")


class EpochProgress:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.unit = "img/s"
        self.console = Console(stderr=True)
        live = self.console.is_terminal or self.console.is_jupyter
        self.bar = None if quiet or not live else Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}{task.fields[acc]}  {task.fields[ips]:.0f} {task.fields[unit]}"),
            TimeRemainingColumn(), console=self.console, transient=True,
        )

    def start_epoch(self, epoch: int, epochs: int, steps: int, unit: str = "img/s"):
        """`unit` names what the speed counts ("head img/s": a head on cached features, not whole images)."""
        self.unit = unit
        if self.bar is None:
            return None
        self.bar.start()
        return self.bar.add_task(f"epoch {epoch + 1}/{epochs}", total=steps, loss=0.0, acc="", ips=0.0, unit=unit)

    def advance(self, task_id, acc: float | None = None, **fields) -> None:
        if self.bar is not None and task_id is not None:  # accuracy only for tasks that report one
            self.bar.update(task_id, advance=1, acc="" if acc is None else f"  acc {acc:.3f}", **fields)

    def end_epoch(self, row: dict) -> None:
        if self.bar is not None:
            for task in list(self.bar.task_ids):
                self.bar.remove_task(task)
            self.bar.stop()
        # Whatever the task reports (train_acc and val_acc for classification, val_map50 for detection, ...).
        metrics = " ".join(f"{k} {v:.4f}" for k, v in row.items()
                           if k.startswith(("train_", "val_")) and isinstance(v, (int, float)))
        speed = next((k for k in row if k.endswith("images_per_s")), None)
        shown = f" ({row[speed]:.0f} {self.unit})" if speed else ""
        self.info(f"epoch {int(row['epoch'])}: {metrics}{shown}")

    def counter(self, description: str, total: int):
        """A bar for one-off work (decoding, feature extraction); returns `advance(n=1)` and `close()`."""
        if self.bar is None:
            return (lambda n=1: None), (lambda: None)
        self.bar.start()
        task = self.bar.add_task(description, total=total, loss=0.0, acc="", ips=0.0, unit="img/s")

        def close():
            self.bar.remove_task(task)
            self.bar.stop()

        return (lambda n=1: self.bar.update(task, advance=n)), close

    def info(self, message: str) -> None:
        if self.quiet:
            log.info(message)
        elif self.bar is not None:
            self.console.print(message)
        else:  # a file or a pipe: the line as it is (a closed pipe raises BrokenPipeError: the loop saves and stops)
            print(message, file=sys.stderr, flush=True)

    def detail(self, message: str) -> None:
        """How the engine runs (memory settings, exact speed-ups), not what the user asked for: a log line with
        --quiet, where logs are kept as the run's record; left off the interactive display, at debug level."""
        if self.quiet:
            log.info(message)
        else:
            log.debug(message)
