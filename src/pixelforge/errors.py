"""The one exception type for user mistakes.

Anything a user can fix (a missing folder, a bad option, a weights file for another model) raises
`PixelforgeError` with a one-line message that names the file or key, the problem and the fix. The CLI prints
that line and exits with code 2; every other exception is a bug and keeps its traceback.
"""


class PixelforgeError(Exception):
    """A user-facing error whose message is a complete, one-line explanation."""
