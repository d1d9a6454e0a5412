"""The cached-feature path for `--strategy linear`: run the frozen backbone once, then train only the head.

With the backbone frozen, every epoch would push the same images through the same network again. Instead each
training image is augmented `views` times and its pooled features are computed once (channels_last, no grad);
the head then trains on those feature vectors in a fraction of a second per epoch. The result is the same model a
frozen-backbone loop trains (tests check the features match the eager backbone), many times sooner.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset


class FeatureDataset(Dataset):
    """(features, label) pairs; index `i` is view `i // n` of sample `i % n`."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor):
        self.features, self.labels = features, labels  # [views, n, dim], [n]

    def __len__(self) -> int:
        return self.features.shape[0] * self.features.shape[1]

    def __getitem__(self, index: int):
        view, sample = divmod(index, self.features.shape[1])
        return self.features[view, sample], self.labels[sample]


@torch.inference_mode()
def extract_features(backbone: torch.nn.Module, dataset, views: int, batch_size: int, workers: int,
                     channels_last: bool = True, device="cpu", progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled backbone features for `views` passes over `dataset` (each pass draws new random augmentations)."""
    backbone.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        persistent_workers=workers > 0 and views > 1)
    all_views, labels = [], None
    for _ in range(views):
        chunks, chunk_labels = [], []
        for x, y in loader:
            x = x.to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            chunks.append(backbone(x).float().cpu())
            chunk_labels.append(y)
            if progress is not None:
                progress(len(y))
        all_views.append(torch.cat(chunks))
        labels = torch.cat(chunk_labels)
    return torch.stack(all_views), labels
