"""Zero-shot classification with any CLIP-like model (Radford et al. 2021, section 3.1.4): embed one prompt per
template and class name, average the normalised text embeddings of each class (prompt ensembling), and label an
image with the class whose embedding is closest in cosine similarity.

The ensembling is open_clip's own `build_zero_shot_classifier`, so a hub CLIP loaded through open_clip and a run
of `--task clip` (itself an `open_clip.CLIP`, models/clip.py) are scored by one piece of code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from pixelforge.errors import PixelforgeError

def imagenet_templates() -> list[str]:
    """"a photo of a {}." (CLIP's single default) and the 7-template ImageNet subset of OpenAI's prompt-engineering
    notebook, which open_clip ships as SIMPLE_IMAGENET_TEMPLATES (lambdas; called with "{}" to get format strings,
    since open_clip's classifier builder needs all templates of one kind)."""
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    return ["a photo of a {}.", *[t("{}") for t in SIMPLE_IMAGENET_TEMPLATES]]


def read_templates(choice: str, default: list[str], option: str = "--templates") -> list[str]:
    """`default` (the model's ensemble), `none` (the bare label) or a text file with one `{}` template a line."""
    if choice == "default":
        return list(default)
    if choice == "none":
        return ["{}"]
    path = Path(choice)
    if not path.is_file():
        raise PixelforgeError(f"{option} {choice}: not default, none, or an existing text file of templates")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    bad = [line for line in lines if line.count("{}") != 1]
    if not lines or bad:
        raise PixelforgeError(f"{path}: each template line needs exactly one {{}} for the label "
                              f"({'no templates' if not lines else 'first bad line: ' + bad[0]!r})")
    return lines


def parse_labels(text: str) -> list[str]:
    labels = [label.strip() for label in text.split(",") if label.strip()]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise PixelforgeError(f"--labels {text!r}: give two or more different comma-separated class names")
    return labels


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


def top_k(scores: torch.Tensor, labels: list[str], k: int) -> list[dict]:
    """Per image: label, score, and the k best [{label, score}]."""
    values, indices = scores.topk(min(k, len(labels)), dim=-1)
    results = []
    for row_values, row_indices in zip(values.tolist(), indices.tolist()):
        best = [{"label": labels[i], "score": round(v, 6)} for v, i in zip(row_values, row_indices)]
        results.append({"label": best[0]["label"], "score": best[0]["score"], "top_k": best})
    return results
