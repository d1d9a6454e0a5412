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
