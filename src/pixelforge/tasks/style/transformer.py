"""The image transformation network of fast style transfer (Johnson et al., "Perceptual Losses for Real-Time
Style Transfer and Super-Resolution", ECCV 2016), with the fixes the field adopted since:

- reflection padding instead of zero padding (no dark borders);
- instance normalisation (Ulyanov et al. 2016) instead of batch norm: the style no longer depends on the batch;
  affine, with no running statistics, so train and eval behave alike;
- nearest-neighbour upsampling then a convolution instead of transposed convolutions, which leave checkerboard
  artefacts (Odena et al., "Deconvolution and Checkerboard Artifacts", Distill 2016).

`width` scales every layer (Johnson: 32); the default 16 stylizes a 512x512 image about 4x faster at the size
the docs measure, with little visible loss.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride))


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels, 3), _norm(channels), nn.ReLU(),
                                  _conv(channels, channels, 3), _norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = _conv(cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))


class TransformerNet(nn.Module):
    """Images in [0, 1] -> stylized images in [0, 1], same size (any size divisible by 4).

    Example:
        >>> TransformerNet(width=8, blocks=1)(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(self, width: int = 16, blocks: int = 5):
        super().__init__()
        w = width
        self.encoder = nn.Sequential(_conv(3, w, 9), _norm(w), nn.ReLU(),
                                     _conv(w, 2 * w, 3, 2), _norm(2 * w), nn.ReLU(),
                                     _conv(2 * w, 4 * w, 3, 2), _norm(4 * w), nn.ReLU())
        self.residuals = nn.Sequential(*[ResidualBlock(4 * w) for _ in range(blocks)])
        self.decoder = nn.Sequential(UpsampleConv(4 * w, 2 * w), _norm(2 * w), nn.ReLU(),
                                     UpsampleConv(2 * w, w), _norm(w), nn.ReLU(), _conv(w, 3, 9))
        self.width, self.blocks = width, blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Scaled to [-1, 1] in, a sigmoid out: the output is an image whatever the weights.
        return torch.sigmoid(self.decoder(self.residuals(self.encoder(x * 2 - 1))))


def clean_state_dict(state: dict) -> dict:
    """Drop instance-norm running statistics from old checkpoints.

    PyTorch < 0.4 saved `running_mean`/`running_var` for InstanceNorm2d layers; loading such a file into a network
    built without tracked statistics fails with "Unexpected key(s)" (the best-known example's reported bug).
    The network never uses them, so they are dropped, along with `num_batches_tracked`.
    """
    unused = ("running_mean", "running_var", "num_batches_tracked")
    return {k: v for k, v in state.items() if not k.rsplit(".", 1)[-1] in unused}


def load_transformer(state: dict, width: int, blocks: int) -> TransformerNet:
    """A TransformerNet with `state` loaded (old running-stat keys tolerated), in eval mode."""
    net = TransformerNet(width, blocks)
    net.load_state_dict(clean_state_dict(state))
    return net.eval()
