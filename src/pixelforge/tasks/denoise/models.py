"""The denoisers: a DnCNN-style residual CNN from scratch, and a U-Net on a pretrained timm encoder.

Both take a float image in [0, 1] ([B, C, H, W], C = 1 or 3, any H and W) and return the denoised image, not
clamped (the loss sees the raw output; inference clamps). Both predict the noise and subtract it from the input
(residual learning, Zhang et al. 2017, "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image
Denoising"): the identity is free, so training spends its steps on the noise.

    dncnn  conv+ReLU, (depth-2) x (conv+BN+ReLU), conv; `features` channels, 3x3 everywhere. With `shuffle` s > 1
           the body runs on the s x s pixel-unshuffled image (C*s*s channels at 1/s resolution) and the noise is
           shuffled back, as FFDNet does (Zhang et al. 2018, "FFDNet: Toward a Fast and Flexible Solution for CNN
           based Image Denoising"): s*s times fewer positions for the same receptive field in pixels times s, at
           about DnCNN's quality; what makes a 2-core CPU training of minutes worth it. s = 1 is the original DnCNN.
    unet   segmentation-models-pytorch's U-Net (Ronneberger et al. 2015) on a timm encoder with our bundled ImageNet
           weights (`models/segmenters.py` builds it, padding to the encoder's stride of 32 and cropping back),
           with an identity head: its linear output is 16 feature maps at full resolution, not classes. smp's
           decoder has no full-resolution skip connection (its first skip is at 1/2), so two 3x3 convolutions fuse
           those maps with the noisy input itself before predicting the noise: otherwise single-pixel noise
           could not be seen, let alone removed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pixelforge.errors import PixelforgeError

MODELS = ("dncnn", "unet")
UNET_FEATURES = 16


class DnCNN(nn.Module):
    def __init__(self, channels: int = 3, depth: int = 12, features: int = 64, shuffle: int = 1):
        super().__init__()
        self.shuffle = shuffle
        channels = channels * shuffle * shuffle
        layers = [nn.Conv2d(channels, features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1, bias=False), nn.BatchNorm2d(features),
                       nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(features, channels, 3, padding=1))
        # Start as the identity (zero predicted noise): with PyTorch's default init the first outputs are noise of
        # the size of the image itself (MSE ~0.2 against ~0.01 for the input), and hundreds of steps go into
        # unlearning it before any denoising starts (measured).
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.body = nn.Sequential(*layers)

    @property
    def multiple(self) -> int:
        return self.shuffle  # input sides the body needs (the runtime pads to it)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shuffle == 1:
            return x - self.body(x)
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.shuffle, -width % self.shuffle
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
        noise = F.pixel_shuffle(self.body(F.pixel_unshuffle(padded, self.shuffle)), self.shuffle)
        return x - noise[..., :height, :width]


class UNetDenoiser(nn.Module):
    def __init__(self, segmenter: nn.Module, channels: int):
        super().__init__()
        self.unet = segmenter  # pixelforge Segmenter: pads to its stride, crops back
        self.register_buffer("mean", torch.tensor(segmenter.mean[:channels] if channels == 3 else
                                                  [sum(segmenter.mean) / 3]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(segmenter.std[:channels] if channels == 3 else
                                                 [sum(segmenter.std) / 3]).view(1, -1, 1, 1))
        self.multiple = 32  # the encoder's stride: the runtime pads to it, the Segmenter would pad with zeros
        self.fuse = nn.Sequential(nn.Conv2d(UNET_FEATURES + channels, 32, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(32, channels, 3, padding=1))
        nn.init.zeros_(self.fuse[-1].weight)  # start as the identity, as DnCNN does
        nn.init.zeros_(self.fuse[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.unet((x - self.mean) / self.std)  # the encoder sees the input its weights were trained on
        return x - self.fuse(torch.cat([features, x], dim=1))


def build_denoiser(name: str, channels: int, *, depth: int = 12, features: int = 64, shuffle: int = 1,
                   encoder: str = "tf_efficientnet_lite0", weights: str = "imagenet") -> nn.Module:
    """The denoiser `name` (dncnn | unet) for `channels` (1 or 3).

    Example:
        >>> model = build_denoiser("dncnn", 3, depth=4, features=8)
        >>> model(torch.zeros(1, 3, 37, 50)).shape
        torch.Size([1, 3, 37, 50])
    """
    if name == "dncnn":
        return DnCNN(channels, depth, features, shuffle)
    if name == "unet":
        from pixelforge.models.segmenters import build_segmenter

        return UNetDenoiser(build_segmenter("unet", encoder, UNET_FEATURES, channels, weights), channels)
    raise PixelforgeError(f"--model {name!r}: denoising models are {', '.join(MODELS)}")
