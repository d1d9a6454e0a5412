"""The one exception type for user mistakes.

Anything a user can fix (a missing folder, a bad option, a weights file for another model) raises
`PixelforgeError` with a one-line message that names the file or key, the problem and the fix. The CLI prints
that line and exits with code 2; every other exception is a bug and keeps its traceback.

Work stopped by Ctrl-C or SIGTERM is not a mistake: `Interrupted` says what was saved and how to continue, and the
CLI exits with the shell's code for the signal (128 + its number: 130 for Ctrl-C, 143 for SIGTERM), so a script
can tell an interruption from a refusal.
"""

import errno
import signal
import threading
from pathlib import Path


class PixelforgeError(Exception):
    """A user-facing error whose message is a complete, one-line explanation."""


class Interrupted(PixelforgeError):
    """Stopped by a signal (`signum`, Ctrl-C's SIGINT unless known), with what was saved and how to continue."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def raise_interrupt(signum, frame):
    """A signal handler: the signal as a KeyboardInterrupt that carries its number (SIGTERM stops work as Ctrl-C)."""
    raise KeyboardInterrupt(signum)


class sigterm_as_interrupt:
    """Within the block, SIGTERM stops work as Ctrl-C does (a KeyboardInterrupt carrying its number), so what an
    interruption saves and says is said for a `kill` too; the handler before is put back after. Main thread only."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, raise_interrupt)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def signal_of(interrupt: BaseException) -> int:
    """The signal behind a KeyboardInterrupt: the number `raise_interrupt` gave it, else Ctrl-C's. A BrokenPipeError
    (the reader of our output went away, `pixelforge train ... 2>&1 | head -1`) stops work as SIGPIPE would."""
    if isinstance(interrupt, BrokenPipeError):
        return int(signal.SIGPIPE)
    given = interrupt.args[0] if interrupt.args else None
    return given if isinstance(given, int) else int(signal.SIGINT)


# OSErrors a user fixes on their side (the disk or the folder, not pixelforge): their reason in words.
UNWRITABLE = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "not permitted",
              errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded"}


def os_error_line(exc: OSError) -> str | None:
    """One line for an OSError a user fixes (an output on a read-only or full disk, a folder without write
    permission), naming the path; None for any other OSError, which is a bug and keeps its traceback.

    A file that exists but cannot be opened is named itself; a file that could not be made is named by its folder,
    since that is what refused it (and the name may be a hidden staging name the user never chose).

    >>> os_error_line(OSError(errno.EROFS, "Read-only file system", "/mnt/ro/out"))
    '/mnt/ro: read-only file system, nothing can be written there; choose another output folder'
    """
    reason = UNWRITABLE.get(exc.errno)
    if reason is None or not isinstance(exc.filename, (str, Path)) or not str(exc.filename):
        return None
    path = Path(exc.filename)
    if exc.errno in (errno.EACCES, errno.EPERM) and path.exists():
        return f"{path}: {reason}; check its permissions (or choose another output)"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{path.parent}: {reason}; free some space or choose another output folder"
    return f"{path.parent}: {reason}, nothing can be written there; choose another output folder"


# What torch says when memory runs out: CUDA's and MPS's "out of memory" (torch.OutOfMemoryError, a RuntimeError),
# the CPU allocator's "DefaultCPUAllocator: can't allocate memory", and the C library's ENOMEM in words.
OUT_OF_MEMORY_TEXTS = ("out of memory", "can't allocate memory", "cannot allocate memory", "failed to allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says memory ran out: Python's MemoryError, torch.OutOfMemoryError, or a RuntimeError with
    torch's words for it. Read without importing torch (this module is the lowest layer)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    # ONNX Runtime's errors (RuntimeException, Fail: "Failed to allocate memory for requested buffer") are not
    # RuntimeErrors; the server and the torch-free runtime meet them.
    raised_by_a_runtime = isinstance(exc, RuntimeError) or type(exc).__module__.startswith("onnxruntime")
    return raised_by_a_runtime and any(text in str(exc).lower() for text in OUT_OF_MEMORY_TEXTS)


def memory_that_ran_out(exc: BaseException) -> str:
    """"GPU memory" for CUDA's or MPS's message, else "memory" (the CPU's, whose allocator or Python said so)."""
    text = str(exc)
    return "GPU memory" if "CUDA" in text or "MPS" in text or "HIP" in text else "memory"


# A DataLoader worker process that died (the kernel's OOM killer, a shared-memory limit such as Docker's 64 MB
# /dev/shm) or too many open files (each batch a worker hands over is a file descriptor): both are fixed by loading
# in the training process itself.
WORKER_FAILURE_TEXTS = ("dataloader worker (pid", "too many open files", "received 0 items of ancdata",
                        "unable to write to file </torch_")


def is_worker_failure(exc: BaseException) -> bool:
    """Whether `exc` is a DataLoader worker's death or the open-file limit (EMFILE) reached."""
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        return True
    return isinstance(exc, RuntimeError) and any(text in str(exc).lower() for text in WORKER_FAILURE_TEXTS)


def worker_failure_line(exc: BaseException, workers: int | None = None) -> str:
    """One line for a worker's death or the open-file limit, with the option that avoids both."""
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        problem = "too many open files"
    else:
        problem = str(exc).strip().splitlines()[0].rstrip(". ") if str(exc).strip() else "a DataLoader worker died"
    used = f" (--workers {workers} in use)" if workers else ""
    return (f"data loading failed: {problem}{used}; load in the training process with --workers 0 (or raise the "
            f"open-file limit with `ulimit -n 4096`, or the container's shared memory, e.g. docker --shm-size 2g)")
