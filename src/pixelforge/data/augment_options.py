"""The augmentation knobs and presets as plain data (pydantic, no torch), so configs can be read and validated
without importing torch; `data/transforms.py` turns them into torchvision transforms v2."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

AugmentPreset = Literal["none", "light", "standard", "strong"]


class AugmentOptions(BaseModel):
    """The individual augmentation knobs; a preset fills the ones a config leaves out."""

    model_config = ConfigDict(extra="forbid")

    crop_scale_min: float | None = None  # RandomResizedCrop's lower area bound; None disables random cropping
    hflip: bool | None = None
    vflip: bool | None = None
    rotate_degrees: float | None = None
    translate: float | None = None
    color_jitter: float | None = None  # brightness = contrast = saturation strength
    auto_augment: Literal["none", "randaugment", "trivialaugment"] | None = None
    random_erasing: float | None = None  # probability
    mixup_alpha: float | None = None  # 0 disables
    cutmix_alpha: float | None = None  # 0 disables


# The knobs an (image, mask) pair takes (data/masks/transforms.py's presets have exactly these): the others act on
# the image alone (translate, auto_augment, random_erasing) or mix labels (mixup, cutmix).
MASK_KNOBS = ("crop_scale_min", "hflip", "vflip", "rotate_degrees", "color_jitter")


PRESETS: dict[str, AugmentOptions] = {
    "none": AugmentOptions(crop_scale_min=None, hflip=False, vflip=False, rotate_degrees=0, translate=0, color_jitter=0,
                           auto_augment="none", random_erasing=0, mixup_alpha=0, cutmix_alpha=0),
    "light": AugmentOptions(crop_scale_min=0.5, hflip=True, vflip=False, rotate_degrees=0, translate=0, color_jitter=0,
                            auto_augment="none", random_erasing=0, mixup_alpha=0, cutmix_alpha=0),
    "standard": AugmentOptions(crop_scale_min=0.35, hflip=True, vflip=False, rotate_degrees=10, translate=0.1,
                               color_jitter=0.2, auto_augment="none", random_erasing=0, mixup_alpha=0, cutmix_alpha=0),
    "strong": AugmentOptions(crop_scale_min=0.25, hflip=True, vflip=False, rotate_degrees=0, translate=0,
                             color_jitter=0.3, auto_augment="trivialaugment", random_erasing=0.25, mixup_alpha=0.2,
                             cutmix_alpha=1.0),
}
