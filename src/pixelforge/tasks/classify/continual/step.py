"""The continual training step: classification's cross-entropy plus the strategy's term (EWC or LwF).

Replay needs no term: its memory is mixed into the training images (setup.py). The state the step keeps (the
memory it trained with, EWC's Fisher and anchor) goes into every checkpoint as task_state, so a resumed run and
the next step in the sequence find it there.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pixelforge.tasks.classify.continual.penalties import ewc_penalty, lwf_distillation
from pixelforge.tasks.classify.task import ClassificationTask


class ContinualStep(ClassificationTask):
    def __init__(self, label_smoothing: float = 0.0, *, params: dict | None = None, ewc: dict | None = None,
                 ewc_lambda: float = 0.0, old_model: nn.Module | None = None, lwf_alpha: float = 1.0,
                 lwf_temperature: float = 2.0, memory: dict | None = None, forward=None):
        super().__init__(label_smoothing, None, forward)
        self.params = params or {}  # the model's own parameters by name (Fabric's wrapper renames them)
        self.ewc = ewc  # {"fisher": {name: tensor}, "anchor": {name: tensor}} or None
        self.ewc_lambda = ewc_lambda
        self.old_model = old_model  # LwF's frozen teacher, or None
        self.lwf_alpha, self.lwf_temperature = lwf_alpha, lwf_temperature
        self.memory = memory  # replay: the memory state this step trained with (kept for the checkpoint)

    def training_step(self, model: nn.Module, batch) -> dict:
        x, y = batch
        logits = self.forward(model, x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        hits = (logits.argmax(1) == y).sum()
        # float64 where the device has it, as ClassificationTask does: mean x count, summed, is the hit count
        out = {"acc": hits.to(torch.float32 if hits.device.type == "mps" else torch.float64) / len(y), "count": len(y)}
        if self.ewc is not None:
            penalty = ewc_penalty(self.params, self.ewc["fisher"], self.ewc["anchor"])
            loss = loss + self.ewc_lambda / 2 * penalty
            out["ewc"] = penalty.detach()
        if self.old_model is not None:
            with torch.no_grad():
                old = self.old_model(x)
            distill = lwf_distillation(logits, old, self.lwf_temperature)
            loss = loss + self.lwf_alpha * distill
            out["lwf"] = distill.detach()
        return {"loss": loss, **out}

    def state_dict(self) -> dict:
        return {"memory": self.memory, "ewc": self.ewc}

    def load_state_dict(self, state: dict) -> None:
        self.memory = state.get("memory", self.memory)
        if state.get("ewc") is not None:
            self.ewc = state["ewc"]
