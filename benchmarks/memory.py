"""B4, peak memory: the resident memory of this process and its children (DataLoader workers) during a block.

A sampling thread reads this process's RSS every 20 ms and its descendants' every 0.5 s. Forked workers share most
pages with their parent, so a worker counts its proportional share (PSS: RSS with every shared page divided among
the processes sharing it); plain RSS would count torch's libraries once per worker. (PSS costs ~7 ms a read, hence
the slower cadence: worker memory holds images in flight and changes slowly.) The kernel's own peak for
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
import time
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


def _pss_kb(pid: int) -> int:
    """Proportional set size from smaps_rollup (Linux 4.14+), else the plain RSS."""
    try:
        for line in (_PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return _status_kb(pid, "VmRSS")


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


def _children_kb() -> int:
    return sum(_pss_kb(child) for child in _descendants(os.getpid()))


def _total_rss_kb() -> int:
    return _status_kb(os.getpid(), "VmRSS") + _children_kb()


class PeakRSS:
    """Context manager; afterwards `.peak_mb` is the peak RSS (process + children) seen inside the block.

    Example:
        >>> with PeakRSS() as memory:
        ...     block = bytearray(50_000_000)
        >>> memory.added_mb > 45
        True
    """

    def __init__(self, interval_s: float = 0.02, children_interval_s: float = 0.5):
        self.interval_s, self.children_interval_s = interval_s, children_interval_s
        self.peak_kb = 0
        self.start_mb = 0.0
        self.exact = _PROC.joinpath("self", "status").exists()
        self._stop = threading.Event()

    def _sample(self) -> None:
        children, last_children = _children_kb(), time.monotonic()
        while not self._stop.wait(self.interval_s):
            if time.monotonic() - last_children >= self.children_interval_s:
                children, last_children = _children_kb(), time.monotonic()
            self.peak_kb = max(self.peak_kb, _status_kb(os.getpid(), "VmRSS") + children)

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
            # VmHWM is this process's own peak RSS: never more than the family's total at that moment.
            self.peak_kb = max(self.peak_kb, _total_rss_kb(), _status_kb(os.getpid(), "VmHWM"))
        else:
            self.peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @property
    def peak_mb(self) -> float:
        return round(self.peak_kb / 1024, 1)

    @property
    def added_mb(self) -> float:
        return round(max(self.peak_kb / 1024 - self.start_mb, 0.0), 1)
