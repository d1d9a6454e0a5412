"""A small CNN for training from scratch: four conv-BN-ReLU blocks, global pooling, dropout in the head."""

from __future__ import annotations

from torch import nn


class SimpleCNN(nn.Module):
    """Feature extractor returning pooled features of size `num_features` (the head is added by `Classifier`).

    Example:
        >>> import torch
        >>> SimpleCNN()(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 256])
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        blocks, in_ch = [], 3
        for i, out_ch in enumerate(widths):
            blocks.append(nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
                nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2) if i < len(widths) - 1 else nn.Identity(),
            ))
            in_ch = out_ch
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = in_ch

    def forward(self, x):
        return self.pool(self.stages(x))
