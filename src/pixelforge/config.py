"""The run configuration's shared part: one pydantic model, loaded from YAML, overridden by CLI options, saved in
the run folder.

Every key is documented here with its type; each task adds its own keys in `tasks/<name>/config.py`, and
`pixelforge.tasks.config` chooses the task's class by the `task` key (a discriminated union). Validation errors
name the key, the task and the allowed values, with the closest valid key for a typo.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pixelforge.data.augment_options import AugmentOptions, AugmentPreset
from pixelforge.errors import PixelforgeError


class RunConfig(BaseModel):
    """What every task's training run shares. Each task extends it with its own keys (`tasks/<name>/config.py`);
    `pixelforge.tasks.config.build_config` picks the class by `task`. CLI options and YAML keys have the same names."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    data: str = Field(description="what to learn from: a folder, a file or a built-in set (`pixelforge tasks` says "
                                  "what each task reads)")
    task: str = Field("classify", description="the task (`pixelforge tasks` says what each reads)")
    model: str = Field("tf_efficientnet_lite0", description="the pretrained backbone or encoder the task builds on "
                                                            "(`pixelforge models` lists them)")
    weights: str = Field("imagenet", description="imagenet | none | coco (detect: torchvision's COCO detector) | "
                                                 "path to .safetensors/.pth")
    strategy: Literal["linear", "full", "gradual"] = Field(
        "linear", description="linear (frozen backbone) | full | gradual (unfreeze stage by stage)")
    out: str | None = Field(None, description="run folder; never overwritten (a suffix is added)")
    epochs: int = Field(10, ge=1, description="passes over the training data")
    batch_size: int = Field(32, ge=1, description="images per step and device")
    img_size: int = Field(224, ge=8, description="input size in pixels")
    augment: AugmentPreset = Field("light", description="augmentation preset; knobs under augment_options (YAML)")
    augment_options: AugmentOptions | None = None
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="the optimizer")
    lr: float | Literal["auto"] = Field(1e-3, description="learning rate, or auto for a range test first")
    lr_find_steps: int = Field(100, ge=5, description="steps of the learning-rate range test behind lr: auto")
    backbone_lr_mult: float = Field(0.1, gt=0, description="backbone lr = lr * this (discriminative learning rates)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW/SGD weight decay (none on biases and norms)")
    schedule: Literal["cosine", "onecycle", "constant"] = Field("cosine", description="learning-rate schedule")
    warmup_epochs: float = Field(0.5, ge=0, description="linear warmup length in epochs")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    early_stopping: int | None = Field(None, ge=1, description="stop after this many epochs without improvement")
    unfreeze_every: int = Field(1, ge=1, description="gradual: epochs between unfreezing successive stages")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="random seed (data order, splits, initialisation)")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="validation share when the data has no splits")
    test_fraction: float = Field(0.0, ge=0, lt=1, description="test share when the data has no splits")
    devices: int = Field(1, ge=1, description="devices (processes) per machine; >1 runs DDP")
    num_nodes: int = Field(1, ge=1, description="machines, when launched by torchrun on each")
    accelerator: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="the device kind")
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = Field(
        "auto", description="auto: bf16 mixed for end-to-end classification and segmentation on CPUs with native "
                            "BF16 (depthwise convs in fp32) and AMP on CUDA, else fp32 (engine/precision.py)")
    workers: int | None = Field(None, ge=0, description="DataLoader workers; default chosen from the core count")
    channels_last: bool = Field(True, description="train in channels-last memory format (faster convolutions)")
    ram_budget_gb: float = Field(4.0, gt=0, description="decoded images kept in RAM up to this size")
    quiet: bool = Field(False, description="log lines instead of progress bars")

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, value):
        if value != "auto" and value <= 0:
            raise ValueError("must be a positive number or 'auto'")
        return value

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value):
        # Lightning's own short forms mean the same mixed precision (its `_PRECISION_INPUT`), so they are taken too.
        return PRECISION_ALIASES.get(str(value), str(value))


PRECISION_ALIASES = {"bf16": "bf16-mixed", "16": "16-mixed", "32-true": "32"}


def read_config_file(path: str | Path) -> dict:
    """The mapping in a YAML config file; one-line errors for a missing file, bad YAML or a non-mapping."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise PixelforgeError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise PixelforgeError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise PixelforgeError(f"{path}: the config must be a mapping of keys to values")
    return values


# The names other libraries give our keys (Ultralytics, timm, Keras, Lightning): difflib cannot see that
# `learning_rate` means `lr`, so these are looked up first.
SYNONYMS = {"learning_rate": "lr", "learningrate": "lr", "lr0": "lr", "imgsz": "img_size", "image_size": "img_size",
            "input_size": "img_size", "imgsize": "img_size", "batch": "batch_size", "bs": "batch_size",
            "num_epochs": "epochs", "n_epochs": "epochs", "max_epochs": "epochs", "backbone": "model",
            "arch_name": "model", "output": "out", "output_dir": "out", "project": "out", "pretrained": "weights",
            "num_workers": "workers", "wd": "weight_decay", "random_seed": "seed", "amp": "precision"}


def closest_key(key: str, keys: list[str]) -> str | None:
    """The valid key a mistyped or foreign `key` most likely meant (None when nothing is close)."""
    if SYNONYMS.get(key.lower()) in keys:
        return SYNONYMS[key.lower()]
    close = difflib.get_close_matches(key, keys, n=1)
    return close[0] if close else None


def describe_errors(exc: ValidationError, model: type[BaseModel], task: str) -> str:
    """pydantic's errors as one line: the key, the problem, and for an unknown key the task and the closest key."""
    parts = []
    for error in exc.errors():
        loc = list(error["loc"])
        if loc and loc[0] == task:  # a discriminated union puts the task's tag first
            loc = loc[1:]
        key = ".".join(str(part) for part in loc) or "config"
        if error["type"] == "extra_forbidden":
            close = closest_key(key, list(model.model_fields))
            hint = f"; did you mean {close!r}?" if close else ""
            parts.append(f"{key}: Extra inputs are not permitted (not an option of task {task!r}{hint})")
        elif error["type"] == "value_error" and "error" in error.get("ctx", {}):
            # Our own validators' messages, without pydantic's "Value error, "; the value only where the message
            # does not name it already, and never a whole config (a check across keys has no one value).
            message, given = str(error["ctx"]["error"]), error.get("input")
            shown = "" if not loc or isinstance(given, dict) or repr(given) in message else f" (got {given!r})"
            parts.append(f"{key}: {message}{shown}")
        else:
            parts.append(f"{key}: {error['msg']} (got {error.get('input')!r})")
    return "; ".join(parts)


def save_config(config: BaseModel, path: Path) -> None:
    """Write `config` as YAML, atomically: a resume rewrites a run's config.yaml, and a full disk midway left it
    empty (the run then unreadable). The pixelforge and run format that wrote it come first (`formats.py`)."""
    from pixelforge.runs.folder import atomic_write_bytes
    from pixelforge.formats import run_stamp

    text = yaml.safe_dump({**run_stamp(), **config.model_dump(mode="json")}, sort_keys=False)
    atomic_write_bytes(Path(path), lambda handle: handle.write(text.encode()))
