"""Reading, resizing and writing the pictures of style transfer, and the luminance-only colour transfer.

Images travel as float tensors [1, 3, H, W] in [0, 1]. Colour preservation follows Gatys et al., "Preserving Color
in Neural Artistic Style Transfer" (2016): transfer on luminance only (the style's luminance matched to the
content's mean and spread), then put the content's chroma back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixelforge.data.images import load_rgb
from pixelforge.errors import PixelforgeError

# ITU-R BT.601 (JPEG's YCbCr): what PIL's "YCbCr" mode uses too; written out because we need it on tensors.
_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def read_image(path: str | Path, long_side: int | None = None) -> torch.Tensor:
    """An image file as [1, 3, H, W] in [0, 1], its longer side resized to `long_side` (None: as is)."""
    path = Path(path)
    if not path.exists():
        raise PixelforgeError(f"{path}: image not found")
    # As every task reads photos: upright by EXIF, alpha on white, 16-bit rescaled (convert("RGB") made it white).
    image = load_rgb(path)
    if long_side:
        image = fit_long_side(image, long_side)
    return to_tensor(image)


def fit_long_side(image: Image.Image, long_side: int) -> Image.Image:
    """Resize so the longer side is `long_side` (both sides a multiple of 4, which the networks downsample by)."""
    scale = long_side / max(image.size)
    width, height = (max(4, round(side * scale / 4) * 4) for side in image.size)
    return image.resize((width, height), Image.LANCZOS)


def to_tensor(image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


def to_pil(tensor: torch.Tensor) -> Image.Image:
    array = tensor.detach()[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray((array * 255 + 0.5).astype(np.uint8))


# What `--out`'s extension writes. Anything else is refused (check_output_name): PNG bytes under `styled.xyz` or a
# name without an extension were a file no viewer opened as the picture it is.
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                  ".tiff": "TIFF", ".gif": "GIF"}


def check_output_name(out: str | Path) -> Path:
    """One line for an `--out` no image can be written to, before any work: a folder, or a name whose extension
    is none of OUTPUT_FORMATS."""
    out = Path(out)
    if out.is_dir():
        raise PixelforgeError(f"{out}: is a folder; give --out an image file name such as {out / 'styled.png'}")
    if out.suffix.lower() not in OUTPUT_FORMATS:
        raise PixelforgeError(f"{out}: cannot tell which image format to write from this name; give --out a .png "
                              f"(lossless), .jpg, .webp, .bmp, .tif or .gif file name")
    return out


def save_image(tensor: torch.Tensor, out: str | Path) -> Path:
    """Write the image in the format its extension names (PNG for any other), atomically; an existing file is never
    overwritten."""
    out = Path(out)
    if out.exists():
        raise PixelforgeError(f"{out}: already exists; choose a new --out (outputs are never overwritten)")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    to_pil(tensor).save(partial, format=OUTPUT_FORMATS.get(out.suffix.lower(), "PNG"))
    partial.replace(out)
    return out


def rgb_to_ycbcr(images: torch.Tensor) -> torch.Tensor:
    ycc = torch.einsum("ij,bjhw->bihw", _TO_YCBCR.to(images), images)
    return ycc + torch.tensor([0.0, 0.5, 0.5], device=images.device).view(1, 3, 1, 1)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    ycc = ycc - torch.tensor([0.0, 0.5, 0.5], device=ycc.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_TO_YCBCR).to(ycc), ycc).clamp(0, 1)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """The Y channel repeated three times: a grey image the loss network can read."""
    return rgb_to_ycbcr(images)[:, :1].repeat(1, 3, 1, 1)


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The style's grey image with the content's luminance mean and standard deviation (Gatys et al. 2016, eq. 1)."""
    s, c = luminance(style), luminance(content)
    return ((s - s.mean()) * (c.std() / s.std().clamp_min(1e-6)) + c.mean()).clamp(0, 1)


def keep_content_colour(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The stylized luminance with the content's chroma."""
    content = torch.nn.functional.interpolate(content, size=stylized.shape[-2:], mode="bilinear", align_corners=False)
    ycc = rgb_to_ycbcr(content)
    ycc[:, :1] = rgb_to_ycbcr(stylized)[:, :1]
    return ycbcr_to_rgb(ycc)
