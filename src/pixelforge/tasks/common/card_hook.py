"""`CardFromFacts`: the `write_card` of a task that supplies `card_facts` (tasks/common/card.py fills the card).

A module of its own, importing nothing at import time: each task's class takes it when `pixelforge.tasks` is
imported, before a command has read its config, and card.py's readers (Pillow, numpy) are not wanted there; nor can
tasks/base.py hold it, since card.py reads configs, which import base.
"""

from __future__ import annotations

from pathlib import Path


class CardFromFacts:
    """Mixed into a task class before `Task`: its `write_card` is the card filled with the task's `card_facts`."""

    def write_card(self, run: Path, peak_memory: dict | None = None) -> Path | None:
        from pixelforge.tasks.common.card import write_task_card

        return write_task_card(run, self.card_facts, peak_memory=peak_memory)
