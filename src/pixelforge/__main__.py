"""The `pixelforge` command's process (also `python -m pixelforge`): settings for a short-lived Python process,
then the CLI.

Why the garbage-collector settings: a command imports torch, timm, torchvision, Lightning and torchmetrics (~10^6
objects, almost none of them garbage), and CPython's cyclic collector, run every 700 net allocations, walks that
growing heap again and again on the way in, and once more on the way out. Collecting 70x less often and freezing
the heap at exit (the objects are freed by reference counting as the interpreter shuts down; only the final full
walk is skipped) saves ~0.8 s of importing and ~1.1 s of shutdown on every command (lever L15 in
docs/performance.md). Only this process entry does it: code that imports pixelforge keeps its own settings.

Why the OpenMP spin count: torch's OpenMP threads (GNU libgomp) spin up to 300,000 times at every barrier before
they sleep. On two cores shared with other work, a thread that waits for a descheduled partner spins away the
very time slice the partner needs: eager Lite0 on 2 images took 2.9 s instead of 0.3 s on one thread, and 14
images 4-6 s instead of 1.1-1.8 s with 10,000 spins (lever L21). 10,000 spins still outlast the gap between two
back-to-back parallel regions, so an idle machine's threads do not fall asleep mid-model. It must be set before
torch loads libgomp; a user's OMP_WAIT_POLICY or GOMP_SPINCOUNT is left as it is.
"""

from __future__ import annotations

import atexit
import gc
import os

GC_THRESHOLD = (50_000, 20, 20)  # CPython's default: (700, 10, 10)
GOMP_SPINCOUNT = "10000"  # libgomp's default: 300000 (OMP_WAIT_POLICY unset)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLD)
    atexit.register(gc.freeze)  # registered first, so it runs after every other exit handler
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
    from pixelforge.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
