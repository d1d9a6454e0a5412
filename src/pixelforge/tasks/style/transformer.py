"""The image transformation network of fast style transfer (Johnson et al., "Perceptual Losses for Real-Time
Style Transfer and Super-Resolution", ECCV 2016), with the fixes the field adopted since:

- reflection padding instead of zero padding (no dark borders);
- instance normalisation (Ulyanov et al. 2016) instead of batch norm: the style no longer depends on the batch;
  affine, with no running statistics, so train and eval behave alike;
- nearest-neighbour upsampling then a convolution instead of transposed convolutions, which leave checkerboard
  artefacts (Odena et al., "Deconvolution and Checkerboard Artifacts", Distill 2016).

`width` scales every layer (Johnson: 32); the default 16 stylizes a 512x512 image about 4x faster at the size
the docs measure, with little visible loss.

`noise_channels` k > 0 adds k input channels of a fixed noise pattern, after Ulyanov et al.'s texture networks
("Texture Networks", ICML 2016), whose generator takes noise beside the content photo so that it can paint texture
where the photo is flat. Theirs is fresh random noise a sample (for diversity); ours is one fixed-seed tile, repeated
over the image, so a photo always gives the same picture (`stylize RUN` and the ONNX package agree) at any size.
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


NOISE_TILE = 128  # px: the noise pattern repeats this often (at 512 px, 4 times across)
NOISE_SEED = 16


def noise_tile(channels: int, cells: tuple[int, ...] = (), size: int = NOISE_TILE) -> torch.Tensor:
    """[1, channels, size, size] fixed uniform noise in [-1, 1] (the network's input range), the same every call.

    `cells` gives channel i's cell size in px (1, the default: a value per pixel; 4: 4x4 blocks, coarser noise).
    """
    generator = torch.Generator().manual_seed(NOISE_SEED)
    planes = []
    for i in range(channels):
        cell = cells[i] if i < len(cells) else 1
        plane = torch.rand(1, 1, size // cell, size // cell, generator=generator) * 2 - 1
        planes.append(nn.functional.interpolate(plane, size=(size, size), mode="nearest"))
    return torch.cat(planes, 1)


class TransformerNet(nn.Module):
    """Images in [0, 1] -> stylized images in [0, 1], same size (any size divisible by 4).

    Example:
        >>> TransformerNet(width=8, blocks=1)(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 3, 32, 32])
        >>> TransformerNet(width=8, blocks=1, noise_channels=2)(torch.rand(1, 3, 36, 200)).shape
        torch.Size([1, 3, 36, 200])
    """

    def __init__(self, width: int = 16, blocks: int = 5, noise_channels: int = 0, noise_cells: tuple[int, ...] = (),
                 learn_noise: bool = False):
        super().__init__()
        w = width
        self.encoder = nn.Sequential(_conv(3, w, 9), _norm(w), nn.ReLU(),
                                     _conv(w, 2 * w, 3, 2), _norm(2 * w), nn.ReLU(),
                                     _conv(2 * w, 4 * w, 3, 2), _norm(4 * w), nn.ReLU())
        self.residuals = nn.Sequential(*[ResidualBlock(4 * w) for _ in range(blocks)])
        self.decoder = nn.Sequential(UpsampleConv(4 * w, 2 * w), _norm(2 * w), nn.ReLU(),
                                     UpsampleConv(2 * w, w), _norm(w), nn.ReLU(), _conv(w, 3, 9))
        self.width, self.blocks, self.noise_channels = width, blocks, noise_channels
        if noise_channels:
            self._add_noise_input(noise_tile(noise_channels, noise_cells), learn_noise)
        else:
            self.noise = None

    def _add_noise_input(self, tile: torch.Tensor, learn: bool) -> None:
        # The first convolution's weights on the noise channels start at zero: the network starts as the one without
        # noise (the same initial weights, seed for seed) and draws on the noise only as far as it lowers the loss.
        first = self.encoder[0][1]
        zeros = torch.zeros(first.out_channels, tile.shape[1], *first.kernel_size)
        first.weight = nn.Parameter(torch.cat([first.weight.detach(), zeros], 1))
        first.in_channels += tile.shape[1]
        if learn:
            self.noise = nn.Parameter(tile)
        else:
            self.register_buffer("noise", tile)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Scaled to [-1, 1] in, a sigmoid out: the output is an image whatever the weights.
        x = x * 2 - 1
        if self.noise is not None:
            x = torch.cat([x, self._noise_like(x)], 1)
        return torch.sigmoid(self.decoder(self.residuals(self.encoder(x))))

    def _noise_like(self, x: torch.Tensor) -> torch.Tensor:
        """The noise tile repeated over x's height and width and cropped to them (Tile + Slice in ONNX)."""
        height, width = x.shape[-2], x.shape[-1]
        tile = self.noise.shape[-1]
        noise = self.noise.repeat(1, 1, height // tile + 1, width // tile + 1)[:, :, :height, :width]
        return noise.expand(x.shape[0], -1, -1, -1)


def clean_state_dict(state: dict) -> dict:
    """Drop instance-norm running statistics from old checkpoints.

    PyTorch < 0.4 saved `running_mean`/`running_var` for InstanceNorm2d layers; loading such a file into a network
    built without tracked statistics fails with "Unexpected key(s)" (the best-known example's reported bug).
    The network never uses them, so they are dropped, along with `num_batches_tracked`.
    """
    unused = ("running_mean", "running_var", "num_batches_tracked")
    return {k: v for k, v in state.items() if not k.rsplit(".", 1)[-1] in unused}


def load_transformer(state: dict, width: int, blocks: int) -> TransformerNet:
    """A TransformerNet with `state` loaded (old running-stat keys tolerated), in eval mode.

    A noise input is read from the state itself (its `noise` tile), so runs from before the option load as they were.
    """
    state = clean_state_dict(state)
    noise = state.get("noise")
    net = TransformerNet(width, blocks, noise_channels=0 if noise is None else noise.shape[1])
    if noise is not None and noise.shape != net.noise.shape:  # a tile of another size than today's
        net.noise = torch.zeros_like(noise)
    net.load_state_dict(state)
    return net.eval()
