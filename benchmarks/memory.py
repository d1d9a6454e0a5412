"""B4, peak memory: the resident set size of this process and its children (DataLoader workers) during a block.

A sampling thread reads /proc every 20 ms and sums this process and all its descendants; the kernel's own peak for
this process (VmHWM, reset at the start through /proc/self/clear_refs) catches spikes between samples. Freed memory
is handed back to the system first (gc, glibc's malloc_trim), so one side does not inherit the last one's heap; the
number to compare is `added_mb`, the peak above the RSS at the start. Where /proc is missing (not Linux) the peak is
the process's ru_maxrss, which cannot be reset, so `exact` is False.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import threading
from pathlib import Path

_PROC = Path("/proc")


def _status_kb(pid: int | str, key: str) -> int:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in (_PROC / str(current) / "task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            found += children
            todo += children
    return found


def release_free_memory() -> None:
    """Collect garbage and return the C heap's free pages to the system (glibc only; a no-op elsewhere)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _total_rss_kb() -> int:
    pid = os.getpid()
    return _status_kb(pid, "VmRSS") + sum(_status_kb(child, "VmRSS") for child in _descendants(pid))


class PeakRSS:
    """Context manager; afterwards `.peak_mb` is the peak RSS (process + children) seen inside the block.

    Example:
        >>> with PeakRSS() as memory:
        ...     block = bytearray(50_000_000)
        >>> memory.added_mb > 45
        True
    """

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.peak_kb = 0
        self.start_mb = 0.0
        self.exact = _PROC.joinpath("self", "status").exists()
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_kb = max(self.peak_kb, _total_rss_kb())

    def __enter__(self) -> "PeakRSS":
        release_free_memory()
        if self.exact:
            try:
                (_PROC / "self" / "clear_refs").write_text("5")  # reset VmHWM to the current RSS
            except OSError:
                pass
            self.peak_kb = _total_rss_kb()
            self.start_mb = self.peak_kb / 1024
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.exact:
            self._stop.set()
            self._thread.join()
            children = sum(_status_kb(c, "VmRSS") for c in _descendants(os.getpid()))
            self.peak_kb = max(self.peak_kb, _total_rss_kb(), _status_kb(os.getpid(), "VmHWM") + children)
        else:
            self.peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @property
    def peak_mb(self) -> float:
        return round(self.peak_kb / 1024, 1)

    @property
    def added_mb(self) -> float:
        return round(max(self.peak_kb / 1024 - self.start_mb, 0.0), 1)
