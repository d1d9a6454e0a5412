"""`quiet=True` from Python: a training prints nothing, in this process and in the DDP processes it spawns.

Without a logging configuration of the caller's, a warning logged by pixelforge (a GAN's "mode collapse") reached the
screen through Python's last-resort handler, and library warnings (`warnings.warn`) printed themselves. A program
that configured logging still gets every record through its own handlers: only the fallback printing is stopped.

A spawned DDP process starts with none of this (and with Lightning's own handler at INFO: "Initializing
distributed", "All distributed processes registered"), before any code of ours runs in it. `SpawnedOutput` travels
with the process's work and silences the process as it is unpickled there, ahead of Lightning's start-up lines.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager

LOG = "pixelforge"


@contextmanager
def silenced(quiet: bool):
    """Within the block, with `quiet`: no pixelforge log record falls back to stderr, and warnings are not shown."""
    if not quiet:
        yield
        return
    logger, fallback = logging.getLogger(LOG), None
    if not logger.hasHandlers():  # nobody configured logging: records would go to the last-resort stderr handler
        fallback = logging.NullHandler()
        logger.addHandler(fallback)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if fallback is not None:
            logger.removeHandler(fallback)


def silence_this_process() -> None:
    """For a spawned process that ends with its work: `silenced` for good, and Lightning's info lines off."""
    from pixelforge.engine.fabric import LOGGER_NAMES, lightning_fabric

    lightning_fabric()  # its import sets its logger to INFO: import first, then lower
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.level, logging.WARNING))
    if not logging.getLogger(LOG).hasHandlers():
        logging.getLogger(LOG).addHandler(logging.NullHandler())
    warnings.simplefilter("ignore")


class SpawnedOutput:
    """Handed to each DDP process with its work; unpickled there (before Lightning's start-up lines), it silences
    the process when the run is quiet. In the launching process it does nothing."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.quiet:
            silence_this_process()
