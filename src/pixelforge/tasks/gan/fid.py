"""FID and KID through torchmetrics, with the feature extractor named in every result.

The standard Inception-v3 FID weights cannot be downloaded here, so the default extractor is the bundled ImageNet
EfficientNet-Lite0's pooled 1280 features (`fid_lite0`, `kid_lite0`): comparable between runs of pixelforge, NOT
with published "FID" numbers. `--fid-weights PATH` (torch-fidelity's pt_inception-2015-12-05 file) gives the
standard extractor (`fid_inception`). FID depends on n, so every result carries n and the real-vs-real floor.

Real features are computed once per (dataset, images, extractor, size) and cached under $PIXELFORGE_HOME; torchmetrics
then gets them through `Precomputed`, a feature module that passes feature rows through, so the numbers are
torchmetrics' own computation (tests/tasks/test_gan.py checks they equal a plain torchmetrics run on images).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from pixelforge.errors import PixelforgeError

LITE0_SIZE = 128  # 32-128 px images upsampled to 128: a third of the cost of 224 px (measured 5 vs 15.6 CPU-s per 256)


class Lite0Features(nn.Module):
    """uint8 RGB [N, 3, H, W] -> EfficientNet-Lite0 (bundled ImageNet weights) pooled features [N, 1280]."""

    name = "lite0"
    num_features = 1280

    def __init__(self):
        super().__init__()
        from pixelforge.models.classifier import build_classifier

        classifier = build_classifier("tf_efficientnet_lite0", 1, weights="imagenet")
        self.backbone = classifier.backbone.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(classifier.spec.mean).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(classifier.spec.std).view(1, 3, 1, 1) * 255)

    def train(self, mode: bool = True):  # always in eval mode, as torchmetrics' Inception
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.float(), size=(LITE0_SIZE, LITE0_SIZE), mode="bilinear", align_corners=False, antialias=True)
        return self.backbone((x - self.mean) / self.std)


class InceptionFeatures(nn.Module):
    """torchmetrics' FID Inception-v3 (2048 pool features) from a local weights file."""

    name = "inception"
    num_features = 2048

    def __init__(self, path: str):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        if not Path(path).expanduser().is_file():
            raise PixelforgeError(f"{path}: --fid-weights file not found (torch-fidelity's pt_inception-2015-12-05 .pth)")
        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                      feature_extractor_weights_path=str(Path(path).expanduser()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Precomputed(nn.Module):
    """A torchmetrics `feature` module for features computed (and cached) beforehand: rows pass through."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def extractor_class(fid_weights: str | None) -> type:
    """Inception with the user's FID weights, else our Lite0 features; the class's `name` names the metric
    (`val_fid_<name>`)."""
    return InceptionFeatures if fid_weights else Lite0Features


def build_extractor(fid_weights: str | None) -> nn.Module:
    cls = extractor_class(fid_weights)
    return cls(fid_weights) if fid_weights else cls()


@torch.inference_mode()
def extract(extractor: nn.Module, images_uint8: torch.Tensor, batch_size: int = 64, progress=None) -> torch.Tensor:
    """Features of uint8 RGB images, in batches; `progress(k)` after each batch of k."""
    # The images stay where they are (the CPU for a decoded dataset); each batch goes to the extractor's device,
    # which is the training's (CUDA included), and its features come back to the CPU, where FID is computed.
    tensor = next(iter([*extractor.parameters(), *extractor.buffers()]), None)
    device = tensor.device if tensor is not None else torch.device("cpu")
    out = []
    for start in range(0, len(images_uint8), batch_size):
        chunk = images_uint8[start:start + batch_size]
        out.append(extractor(chunk.to(device)).float().cpu())
        if progress is not None:
            progress(len(chunk))
    return torch.cat(out)


def cache_path(key: dict) -> Path:
    from pixelforge.data.builtin import cache_root

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_root() / "gan-real-features" / f"{digest}.pt"


def cached_features(key: dict, compute) -> tuple[torch.Tensor, bool]:
    """(features, whether they came from the cache): `compute()` runs once per key, the result is saved atomically."""
    from pixelforge.runs.folder import atomic_write_bytes

    path = cache_path(key)
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("key") == key:
            return saved["features"], True
    features = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda f: torch.save({"key": key, "features": features}, f))
    return features, False


def fid_kid(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> dict:
    """torchmetrics' FID and KID between two sets of feature rows: {"fid", "kid", "kid_std"}.

    KID averages 50 random subsets of half the smaller set (at least 2), seeded, so it is repeatable. The rows are
    all of them: never gathered from other DDP processes (torchmetrics does that by default when a process group
    is up, which counted every row once per process, and would wait for processes that do not compute).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    dim = real.shape[1]
    fid = FrechetInceptionDistance(feature=Precomputed(dim), sync_on_compute=False)
    fid.update(real.double(), real=True)
    fid.update(fake.double(), real=False)
    subset = max(2, min(len(real), len(fake)) // 2)
    with warnings.catch_warnings():  # "will save all extracted features": that is the point, n is small
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=Precomputed(dim), subsets=50, subset_size=subset,
                                      sync_on_compute=False)
    kid.update(real.double(), real=True)
    kid.update(fake.double(), real=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


def mean_pairwise_distance(features: torch.Tensor, max_rows: int = 512) -> float:
    """Mean Euclidean distance between distinct feature rows: how varied a set of images is (mode collapse drops
    it far below the real images' value)."""
    x = features[:max_rows].double()
    d = torch.cdist(x, x)
    n = len(x)
    return float(d.sum() / max(n * (n - 1), 1))
