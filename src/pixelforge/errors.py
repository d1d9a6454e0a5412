"""The one exception type for user mistakes.

Anything a user can fix (a missing folder, a bad option, a weights file for another model) raises
`PixelforgeError` with a one-line message that names the file or key, the problem and the fix. The CLI prints
that line and exits with code 2; every other exception is a bug and keeps its traceback.

Work stopped by Ctrl-C or SIGTERM is not a mistake: `Interrupted` says what was saved and how to continue, and the
CLI exits with the shell's code for the signal (128 + its number: 130 for Ctrl-C, 143 for SIGTERM), so a script
can tell an interruption from a refusal.
"""

import signal


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


def signal_of(interrupt: KeyboardInterrupt) -> int:
    """The signal behind a KeyboardInterrupt: the number `raise_interrupt` gave it, else Ctrl-C's."""
    given = interrupt.args[0] if interrupt.args else None
    return given if isinstance(given, int) else int(signal.SIGINT)
