"""Checks the denoise, compress, style, gan, caption and clip tests share: the run's model_card.md states the
figures of the evaluation it names (read back from that file here, never typed in), and a package carries it."""

from __future__ import annotations

import re
from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.tasks.common.card import fmt


def row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def card_and_metrics(run: Path) -> tuple[str, dict]:
    """The run's card and the metrics.json it says it reports (`eval-.../metrics.json`)."""
    card = (run / "model_card.md").read_text()
    named = re.search(r"`(eval[^`]*)/metrics\.json`", card)
    assert named, "the card names no evaluation"
    return card, rd.read_json(run / named.group(1) / "metrics.json")


def check_common_sections(run: Path, card: str) -> None:
    """The sections every such card has, with the run's own data counts and training figures."""
    summary = rd.read_json(run / "summary.json")
    for heading in ("## Model details", "## Intended use", "## Training data", "## Training recipe", "## Evaluation",
                    "## Limitations", "## Compute"):
        assert heading in card
    assert f"{summary['train_images']} training" in card
    assert row("best validation figure", f"`{summary['monitor']}` {fmt(summary['best_metric'])}") in card
    assert f"{summary['seconds_training']} s over the epochs" in card


def check_package_card(package: Path, run: Path) -> None:
    """The package holds the run's card (written at export time for a run without one)."""
    text = (Path(package) / "model_card.md").read_text()
    assert text.startswith(f"# Model card: {run.name}") and "## Evaluation" in text
