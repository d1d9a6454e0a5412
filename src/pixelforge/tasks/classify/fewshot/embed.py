"""L2-normalised embeddings of image files from a pretrained backbone, optionally averaged over a flipped view.

Reuses classification's pieces end to end: `build_classifier` for the backbone and its offline weights, the
evaluation transform and decode size of the backbone's spec, `ImageDataset.preload` to decode each file once, and
`FeatureExtractor` (ONNX Runtime when it matches eager PyTorch) for the pooled features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from pixelforge.data.dataset import ImageDataset
from pixelforge.data.sources import Sample
from pixelforge.data.transforms import decode_size, eval_transform
from pixelforge.engine.threads import single_threaded
from pixelforge.errors import PixelforgeError
from pixelforge.models.classifier import build_classifier, check_img_size
from pixelforge.models.fewshot import l2_normalize
from pixelforge.tasks.classify.features import FeatureExtractor, extract_features

# Bundled ImageNet weights (offline). Lite2 rather than classify's Lite0: nothing is trained here, so the embedding is
# the whole model; on hymenoptera 5-shot it scored 96.9% against Lite0's 92.3% (1-shot: 94.3% vs 85.0%) for about
# 1.2x the embedding time of those photos, whose decoding dominates (benchmarks/fewshot.py, docs/few-shot.md).
DEFAULT_MODEL = "tf_efficientnet_lite2"


@dataclass(frozen=True)
class EmbeddingOptions:
    model: str = DEFAULT_MODEL
    weights: str = "imagenet"
    img_size: int = 224
    tta: bool = False  # also embed the horizontally flipped image and average the two normalised embeddings
    batch_size: int = 32


class Embedder:
    """Embeds lists of `Sample`s with one backbone (exported to ONNX once, on the first batch).

    Example:
        >>> embedder = Embedder(EmbeddingOptions(model="simple_cnn", weights="none", img_size=32))  # doctest: +SKIP
        >>> vectors = embedder(samples)  # [len(samples), dim], unit length  # doctest: +SKIP
    """

    def __init__(self, options: EmbeddingOptions, progress=None):
        check_img_size(options.model, options.img_size)
        self.options, self.progress = options, progress
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = build_classifier(options.model, num_classes=1, weights=options.weights)
        self.backbone = model.backbone.to(device).eval()
        self.spec = model.spec
        self.extractor = FeatureExtractor(self.backbone, device)

    @property
    def views(self) -> int:
        return 2 if self.options.tta else 1

    def __call__(self, samples: list[Sample], what: str = "images") -> torch.Tensor:
        """[n, dim] unit-length embeddings, in the order of `samples`; an unreadable file is a one-line error."""
        vectors, _, errors = self.readable(samples, what)
        if errors:
            more = f" (and {len(errors) - 1} more unreadable images)" if len(errors) > 1 else ""
            raise PixelforgeError(f"{errors[0]}{more}")
        return vectors

    def readable(self, samples: list[Sample], what: str = "images") -> tuple[torch.Tensor, list[Sample], list[str]]:
        """(embeddings of the samples that decode, those samples in order, one error line per file that does not)."""
        if not samples:
            return torch.zeros(0, 0), [], []
        opts = self.options
        plain = eval_transform(opts.img_size, self.spec.mean, self.spec.std)
        # Labels are irrelevant here (the caller keeps them); every sample maps to 0.
        dataset = ImageDataset(samples, {s.label: 0 for s in samples}, decode_size(opts.img_size, self.spec.crop_pct))
        errors = dataset.preload(warn=False)  # the caller says it once: an error, or a line per skipped file
        if not dataset.samples:
            return torch.zeros(0, 0), [], errors
        advance, close = self._counter(f"embedding {what}", len(dataset.samples) * self.views)
        try:
            views = []
            for flip in range(self.views):
                transform = v2.Compose([plain, v2.RandomHorizontalFlip(p=1.0)]) if flip else plain
                dataset.transform = single_threaded(transform)
                features, _ = extract_features(self.backbone, dataset, 1, opts.batch_size, 0,
                                               extractor=self.extractor, progress=advance)
                views.append(l2_normalize(features[0]))
        finally:
            close()
        return l2_normalize(torch.stack(views).mean(0)), list(dataset.samples), errors

    def describe(self) -> str:
        """Which engine computed the features, and why (for the log)."""
        return f"{self.extractor.name} ({self.extractor.reason})" if self.extractor.name else "not run yet"

    def close(self) -> None:
        self.extractor.close()

    def _counter(self, description: str, total: int):
        if self.progress is None:
            return (lambda n=1: None), (lambda: None)
        return self.progress.counter(description, total)
