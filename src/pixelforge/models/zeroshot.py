"""Zero-shot classification with any CLIP-like model (Radford et al. 2021, section 3.1.4): embed one prompt per
template and class name, average the normalised text embeddings of each class (prompt ensembling), and label an
image with the class whose embedding is closest in cosine similarity.

The ensembling is open_clip's own `build_zero_shot_classifier`, so a hub CLIP loaded through open_clip and a run
of `--task clip` (itself an `open_clip.CLIP`, models/clip.py) are scored by one piece of code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class ZeroShotModel:
    """A CLIP-like `model` (encode_image, encode_text, logit_scale) with its `tokenize` (texts -> ids tensor) and
    `preprocess` (PIL image -> tensor [3, H, W]); `templates` are its default prompt ensemble."""

    model: torch.nn.Module
    tokenize: Callable
    preprocess: Callable
    templates: list[str]
    name: str
    device: str = "cpu"
    tokenizer: object = None  # a --task clip run's word tokenizer (its vocabulary: labels can hold words it lacks)

    @torch.no_grad()
    def class_embeddings(self, labels: list[str], templates: list[str]) -> torch.Tensor:
        """[D, C]: per label, the renormalised mean of its prompts' normalised text embeddings."""
        from open_clip import build_zero_shot_classifier

        return build_zero_shot_classifier(self.model, self.tokenize, labels, templates, device=self.device)

    @torch.no_grad()
    def image_embeddings(self, images: list) -> torch.Tensor:
        """[N, D] normalised embeddings of PIL images (batches of 64)."""
        chunks = []
        for k in range(0, len(images), 64):
            batch = torch.stack([self.preprocess(image) for image in images[k:k + 64]]).to(self.device)
            chunks.append(self.model.encode_image(batch, normalize=True).float())
        return torch.cat(chunks)

    def scores(self, image_embeddings: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
        """[N, C] probabilities: softmax of the model's own temperature times the cosine similarities."""
        scale = float(self.model.logit_scale.detach().exp()) if hasattr(self.model, "logit_scale") else 100.0
        return (scale * image_embeddings @ class_embeddings.float()).softmax(-1)
