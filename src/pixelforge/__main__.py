"""The `pixelforge` command's process (also `python -m pixelforge`): settings for a short-lived Python process,
then the CLI.

Why the garbage-collector settings: a command imports torch, timm, torchvision, Lightning and torchmetrics (~10^6
objects, almost none of them garbage), and CPython's cyclic collector, run every 700 net allocations, walks that
growing heap again and again on the way in, and once more on the way out. Collecting 70x less often and freezing
the heap at exit (the objects are freed by reference counting as the interpreter shuts down; only the final full
walk is skipped) saves ~0.8 s of importing and ~1.1 s of shutdown on every command (lever L15 in
docs/performance.md). Only this process entry does it: code that imports pixelforge keeps its own settings.
"""

from __future__ import annotations

import atexit
import gc

GC_THRESHOLD = (50_000, 20, 20)  # CPython's default: (700, 10, 10)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLD)
    atexit.register(gc.freeze)  # registered first, so it runs after every other exit handler
    from pixelforge.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
