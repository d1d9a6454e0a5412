"""The continual-learning keys of the classification config (`pixelforge train --continue-from RUN ...`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pixelforge.config import RunConfig


class ContinualConfig(RunConfig):
    continue_from: str | None = Field(
        None, description="continue a trained run folder (the run stays untouched; keys not given are the "
                          "parent's), on new data or new classes")
    continual: Literal["naive", "replay", "ewc", "lwf"] = Field(
        "naive", description="with continue_from, the strategy against forgetting: plain fine-tuning, a replayed "
                             "memory of old images, elastic weight consolidation, learning without forgetting")
    memory: int = Field(200, ge=1, description="replay: images kept in memory in total, balanced over the classes "
                                               "seen so far")
    ewc_lambda: float = Field(1000.0, ge=0, description="ewc: weight of the penalty on moving important weights")
    lwf_alpha: float = Field(1.0, ge=0, description="lwf: weight of the distillation loss on the old classes")
    lwf_temperature: float = Field(2.0, gt=0, description="lwf: softmax temperature of the distillation (Li & "
                                                         "Hoiem use 2)")

    @model_validator(mode="after")
    def _strategy_needs_a_parent(self):
        if self.continual != "naive" and not self.continue_from:
            raise ValueError(f"continual {self.continual!r} needs continue_from (the run to continue from)")
        return self
