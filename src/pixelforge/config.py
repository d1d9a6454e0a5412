"""The run configuration: one pydantic model, loaded from YAML, overridden by CLI options, saved in the run folder.

Every key is documented here with its type; validation errors name the key and the allowed values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pixelforge.data.transforms import AugmentOptions, AugmentPreset
from pixelforge.errors import PixelforgeError


class TrainConfig(BaseModel):
    """Everything that defines a training run. CLI options and YAML keys have the same names."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    data: str = Field(description="classify: folder of class subfolders, a CSV (path,label[,split][,group]), or "
                                  "digits|shapes; detect: COCO json/folder, YOLO data.yaml, VOC folder, or shapes; "
                                  "segment: images/ + masks/ folders, VOC, COCO json, or shapes")
    task: Literal["classify", "detect", "segment", "instance"] = "classify"
    model: str = Field("tf_efficientnet_lite0", description="the backbone (classify) or encoder (detect, segment)")
    arch: str | None = Field(None, description="detect: fasterrcnn|retinanet|fcos|ssdlite; segment: unet|fpn|"
                                               "deeplabv3plus|deeplabv3|lraspp; instance: maskrcnn (None: task default)")
    weights: str = Field("imagenet", description="imagenet | none | coco (detect: torchvision's COCO detector) | "
                                                 "path to .safetensors/.pth")
    strategy: Literal["linear", "full", "gradual"] = "linear"
    out: str | None = Field(None, description="run folder; never overwritten (a suffix is added)")
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    img_size: int = Field(224, ge=8)
    augment: AugmentPreset = "light"
    augment_options: AugmentOptions | None = None
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float | Literal["auto"] = 1e-3
    lr_find_steps: int = Field(100, ge=5, description="steps of the learning-rate range test behind lr: auto")
    backbone_lr_mult: float = Field(0.1, gt=0, description="backbone lr = lr * this (discriminative learning rates)")
    weight_decay: float = Field(0.01, ge=0)
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"
    warmup_epochs: float = Field(0.5, ge=0)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    grad_clip: float | None = Field(None, gt=0)
    early_stopping: int | None = Field(None, ge=1, description="stop after this many epochs without improvement")
    unfreeze_every: int = Field(1, ge=1, description="gradual: epochs between unfreezing successive stages")
    balance: Literal["none", "classes", "groups"] = Field(
        "none", description="re-weighted sampling: draw every class, or every group, equally often")
    groups: str = Field("group", description="each image's group: a CSV column, or a folder,group mapping .csv")
    seed: int = 0
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.0, ge=0, lt=1)
    devices: int = Field(1, ge=1, description="devices (processes) per machine; >1 runs DDP")
    num_nodes: int = Field(1, ge=1, description="machines, when launched by torchrun on each")
    accelerator: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = Field(
        "auto", description="auto: bf16 mixed for end-to-end classification and segmentation on CPUs with native "
                            "BF16 (depthwise convs in fp32) and AMP on CUDA, else fp32 (engine/precision.py)")
    workers: int | None = Field(None, ge=0, description="DataLoader workers; default chosen from the core count")
    channels_last: bool = True
    compile: bool = Field(False, description="classify, full strategy: torch.compile the training step (~1 min to "
                                            "compile on 2 CPU cores; pays in long fp32 runs)")
    cache_features: bool | None = Field(None, description="linear: train the head on cached backbone features")
    feature_views: int = Field(4, ge=1, description="augmented views per image when caching features")
    ram_budget_gb: float = Field(4.0, gt=0)
    quiet: bool = False
    # detection
    anchor_sizes: list[int] | None = Field(None, description="detect: anchor box sizes in pixels, one per level")
    min_size: int | None = Field(None, ge=8, description="detect: the detector's internal resize (default img_size)")
    max_size: int | None = Field(None, ge=8, description="detect: the detector's longest-side cap (default img_size)")
    # segmentation
    loss: Literal["ce", "dice", "focal", "ce+dice", "focal+dice"] = "ce+dice"
    ignore_index: int = Field(255, description="segment: mask value that is not scored and not learnt")
    class_weights: list[float] | None = Field(None, description="segment: cross-entropy weight per class")
    in_channels: int | None = Field(None, ge=1, description="segment: image channels (None: from the data)")
    normalize: Literal["auto", "imagenet", "dataset"] = Field(
        "auto", description="segment: auto = the data's own mean/std for 1-channel or 16-bit images, else the "
                            "encoder's")

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, value):
        if value != "auto" and value <= 0:
            raise ValueError("must be a positive number or 'auto'")
        return value

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value):
        return str(value)


# Defaults that differ by task, applied to keys a user did not set (YAML or CLI). Measured to reach each issue's
# target on the built-in shapes data in a few minutes on 2 CPU cores (numbers in the README).
TASK_DEFAULTS: dict[str, dict] = {
    "classify": {},
    # Faster R-CNN + FPN on Lite0 at 160 px: test mAP50 0.92 on shapes after 16 epochs (0.91 after 12).
    "detect": {"arch": "fasterrcnn", "img_size": 160, "epochs": 16, "batch_size": 8, "strategy": "full", "lr": 2e-3},
    # U-Net on Lite0 at 128 px: test mIoU 0.86 on shapes after 16 epochs; 20 for a margin (README, Segmentation).
    "segment": {"arch": "unet", "img_size": 128, "epochs": 20, "batch_size": 8, "strategy": "full", "lr": 2e-3},
    # Mask R-CNN on Lite0 at 160 px: test mask mAP50 0.86 on shapes after 10 epochs (~5 min).
    "instance": {"arch": "maskrcnn", "img_size": 160, "epochs": 10, "batch_size": 8, "strategy": "full", "lr": 2e-3},
}


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "config"
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


def build_config(config_file: str | Path | None = None, **overrides) -> TrainConfig:
    """Merge a YAML file with explicit overrides (None means "not given") and validate.

    Example:
        >>> build_config(data="digits", epochs=2).epochs
        2
    """
    values: dict = {}
    if config_file:
        path = Path(config_file)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise PixelforgeError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise PixelforgeError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(values, dict):
            raise PixelforgeError(f"{path}: the config must be a mapping of keys to values")
    values.update({k: v for k, v in overrides.items() if v is not None})
    task = values.get("task", "classify")
    values = {**TASK_DEFAULTS.get(task, {}), **values}
    if "data" not in values:
        raise PixelforgeError("data: required; pass --data DIR_OR_CSV or set data: in the config file")
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        where = f"{config_file}: " if config_file else ""
        raise PixelforgeError(where + "; ".join(_describe(e) for e in exc.errors())) from None


def save_config(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def load_config(path: Path) -> TrainConfig:
    return TrainConfig(**yaml.safe_load(path.read_text()))
