"""Fine-tuning above the engine: the hook that runs `gradual` unfreezing (models/finetune.py has the strategies).

It lives here rather than beside the strategies because the hook is the engine's (`engine.hooks`), and models sit
below the engine.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from pixelforge.engine.hooks import GradualUnfreezing
from pixelforge.models.finetune import apply_strategy, stages


def gradual_unfreezing_hook(model: nn.Module, unfreeze_every: int, log: Callable[[str], None],
                            what: str = "backbone") -> GradualUnfreezing:
    """The engine hook that, before each epoch, unfreezes `model`'s pretrained stages for the `gradual` strategy.

    `what` names the pretrained part in the message ("gradual: 2 of 5 backbone stages trainable").

    Example:
        >>> from pixelforge.models.classifier import build_classifier
        >>> hook = gradual_unfreezing_hook(build_classifier("simple_cnn", 3, "none"), 1, print)
        >>> hook.stages > 0
        True
    """
    return GradualUnfreezing(lambda epoch: apply_strategy(model, "gradual", epoch, unfreeze_every),
                             len(stages(model)), what, log)
