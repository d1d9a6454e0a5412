"""The options only classification has (on top of `pixelforge.config.RunConfig`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pixelforge.tasks.classify.continual.config import ContinualConfig


class ClassifyConfig(ContinualConfig):  # RunConfig + the continual-learning keys
    task: Literal["classify"] = "classify"
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="label smoothing of the cross-entropy loss")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout before the new head")
    balance: Literal["none", "classes", "groups"] = Field(
        "none", description="re-weighted sampling: draw every class, or every group, equally often")
    groups: str = Field("group", description="each image's group: a CSV column, or a folder,group mapping .csv")
    compile: bool = Field(False, description="full strategy: torch.compile the training step (~1 min to compile on "
                                            "2 CPU cores; pays in long fp32 runs)")
    cache_features: bool | None = Field(None, description="linear: train the head on cached backbone features")
    feature_views: int = Field(1, ge=1, description="augmented views per image when caching features (1: measured as accurate as 4 on hymenoptera, 1.9x faster end to end; docs/performance.md L14)")
    train_on_val: bool = Field(False, description="also train on the validation split (a tuned config's final "
                                                  "training; needs a test split to score on)")
    calibrate: bool = Field(True, description="after training, fit a softmax temperature on the validation split "
                                             "so scores are calibrated probabilities (predictions do not change)")
