"""Seeded synthetic noise for denoising (`--noise`): what a clean image becomes before the denoiser sees it.

numpy and Pillow only, so the torch-free runtime and the web page add exactly the noise training used. Every model
works on float images in [0, 1] (8-bit values / 255, 16-bit values / 65535), H x W x C, and returns the same shape:

    gaussian:SIGMA     x + N(0, (SIGMA/255)^2) per value: SIGMA is on the 0-255 scale whatever the bit depth
                       (`gaussian:25` is the usual "sigma 25" of the denoising literature)
    poisson:PEAK       Poisson(x * PEAK) / PEAK: shot noise of a sensor that counts PEAK photons at full white
                       (lower PEAK = noisier; the variance is x / PEAK)
    saltpepper:AMOUNT  a share AMOUNT of the pixels (all channels of a pixel together) set to 0 or 1, half each
    jpeg:QUALITY       Pillow's JPEG at QUALITY (1-95), decoded again: blocking and ringing artefacts
    A+B                apply A, then B (e.g. `gaussian:10+jpeg:40`, a noisy photo saved as JPEG)
    A|B                each image draws one of A, B with equal chance (a model trained for several noises)

Clipping: every result is clipped to [0, 1] (0-255 on the 8-bit scale), as a saved image would be; the noisy
image is then rounded to the image's bit depth by whoever saves or scores it (`quantize`). Clipping makes the
noise slightly non-zero-mean near black and white, the same for the denoisers and the classical baselines.

Seeding: `apply(x, rng)` takes a `numpy.random.Generator`; `rng_for(seed, key)` makes one from the run's seed and
an image's identity, so evaluation adds the same noise to the same image in every run and process.

Example:
    >>> import numpy as np
    >>> noise = parse_noise("gaussian:25")
    >>> noisy = noise.apply(np.full((64, 64, 3), 0.5), np.random.default_rng(0))
    >>> round(float((noisy - 0.5).std() * 255))
    25
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from pixelforge.errors import PixelforgeError

KINDS = {"gaussian": "SIGMA (0-255 scale, 0 < SIGMA <= 255)", "poisson": "PEAK (photons at white, > 0)",
         "saltpepper": "AMOUNT (share of pixels, 0-1)", "jpeg": "QUALITY (1-95)"}


@dataclass(frozen=True)
class Noise:
    """One noise kind with its level (see the module docstring for each kind's definition)."""

    kind: str
    level: float

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """`x` float in [0, 1], H x W x C -> the noisy float image, clipped to [0, 1]."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "gaussian":
            # scikit-image's random_noise(mode="gaussian") is this same line; it needs the variance and a float image
            noisy = x + rng.normal(0.0, self.level / 255.0, x.shape)
        elif self.kind == "poisson":
            noisy = rng.poisson(np.clip(x, 0, 1) * self.level) / self.level
        elif self.kind == "saltpepper":
            hit = rng.random(x.shape[:2]) < self.level
            salt = rng.random(x.shape[:2]) < 0.5
            noisy = x.copy()
            noisy[hit & salt], noisy[hit & ~salt] = 1.0, 0.0
        else:
            noisy = _jpeg(x, int(self.level))
        return np.clip(noisy, 0.0, 1.0)

    @property
    def gaussian_sigma(self) -> float | None:
        return self.level if self.kind == "gaussian" else None

    def __str__(self) -> str:
        return f"{self.kind}:{self.level:g}"


@dataclass(frozen=True)
class NoiseModel:
    """A noise spec: alternatives (`|`), each a chain (`+`) of `Noise`s. `apply` draws the alternative from `rng`."""

    spec: str
    choices: tuple[tuple[Noise, ...], ...]

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        chain = self.choices[int(rng.integers(len(self.choices)))] if len(self.choices) > 1 else self.choices[0]
        for noise in chain:
            x = noise.apply(x, rng)
        return x

    def below_one_level(self) -> list[Noise]:
        """Its gaussian parts with SIGMA < 1: on 8-bit images that noise is mostly rounded away (`gaussian:0.1` is
        usually a SIGMA meant on the 0-1 scale; 16-bit images keep it, so it is a warning, not an error)."""
        return [n for chain in self.choices for n in chain if n.kind == "gaussian" and n.level < 1]

    @property
    def gaussian_sigma(self) -> float | None:
        """SIGMA for plain `gaussian:SIGMA` (what BM3D and the docs quote), else None."""
        if len(self.choices) == 1 and len(self.choices[0]) == 1:
            return self.choices[0][0].gaussian_sigma
        return None


def parse_noise(spec: str) -> NoiseModel:
    """`gaussian:25`, `poisson:30`, `saltpepper:0.05`, `jpeg:20`, joined with `+` (in sequence) or `|` (one of)."""
    text = str(spec).strip().lower()
    if not text:
        raise PixelforgeError("--noise: empty; e.g. gaussian:25, poisson:30, saltpepper:0.05, jpeg:20 or gaussian:10+jpeg:40")
    choices = tuple(tuple(_parse_one(part.strip(), spec) for part in alt.split("+")) for alt in text.split("|"))
    return NoiseModel(text, choices)


def _parse_one(part: str, spec: str) -> Noise:
    kind, _, value = part.partition(":")
    if kind not in KINDS:
        raise PixelforgeError(f"--noise {spec!r}: unknown noise {kind!r}; use {', '.join(f'{k}:{v}' for k, v in KINDS.items())}")
    try:
        level = float(value)
    except ValueError:
        raise PixelforgeError(f"--noise {spec!r}: {kind} needs a number, {kind}:{KINDS[kind]}") from None
    # nan and inf parse as floats; the checks below would pass inf (and int() of either raised a ValueError that
    # reached the user as "cannot convert float NaN to integer")
    # A SIGMA above 255 (full white) turns every value into a coin flip between 0 and 1 after clipping: no image is
    # left to denoise, so `gaussian:1e9` is a typo, not a setting.
    valid = np.isfinite(level) and {"gaussian": 0 < level <= 255, "poisson": level > 0, "saltpepper": 0 < level <= 1,
                                    "jpeg": level == round(level) and 1 <= level <= 95}[kind]
    if not valid:
        raise PixelforgeError(f"--noise {spec!r}: {kind}:{value} out of range; {kind}:{KINDS[kind]}")
    return Noise(kind, level)


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    eight = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(eight[..., 0] if eight.shape[-1] == 1 else eight)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float64) / 255.0
    return decoded.reshape(x.shape)


def rng_for(seed: int, key: str) -> np.random.Generator:
    """A generator fixed by the run's seed and an image's identity (its file name): the same noise every time."""
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng([int(seed), digest])


def to_unit(image: np.ndarray) -> np.ndarray:
    """An HxWxC uint8/uint16 image as float64 in [0, 1] (scaled by its bit depth)."""
    return image.astype(np.float64) / (65535.0 if image.dtype == np.uint16 else 255.0)


def quantize(x: np.ndarray, dtype) -> np.ndarray:
    """A [0, 1] float image back to `dtype` (uint8 or uint16), rounded: what a saved image holds."""
    top = 65535.0 if np.dtype(dtype) == np.uint16 else 255.0
    return np.round(np.clip(x, 0.0, 1.0) * top).astype(dtype)
