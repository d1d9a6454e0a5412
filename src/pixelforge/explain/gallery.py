"""The report's Grad-CAM gallery: where the model looked on its most confident right and wrong answers, with the
deletion/insertion faithfulness of those heat maps against a random order of image blocks.

Kept small on purpose: it runs at the end of every training run. Six heat maps are one batched backward pass;
scoring three of them costs 3 x 4 x (steps + 1) = 84 forward passes (a few seconds for EfficientNet-Lite0 at
224 px on two CPU cores). `pixelforge explain` scores more images, with any method, for comparison.

With a `graph` (`graph(x)`: the backbone's pooled features; `graph.features_and_maps(x)`: them and the map they are
the spatial mean of; e.g. tasks/classify/features.py's ONNX Runtime session), the heat maps are CAM on that map and
the 84 passes run through it: the same numbers as eager Grad-CAM on a linear head (explain/cam.py
`linear_head_cam`), without the eager backbone's forward and backward passes (issue 20, lever L22).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pixelforge.metrics.classification import worst_mistakes
from pixelforge.viz.grid import plot_gallery


def pick_examples(logits: torch.Tensor, targets: torch.Tensor, per_kind: int = 4) -> tuple[list[int], list[int]]:
    """Indices of the most confident correct predictions and the most confident mistakes."""
    confidence, preds = logits.softmax(1).max(1)
    right = np.flatnonzero((preds == targets).numpy())
    right = [int(i) for i in right[np.argsort(-confidence.numpy()[right], kind="stable")][:per_kind]]
    return right, worst_mistakes(logits, targets, per_kind)


class GraphClassifier(torch.nn.Module):
    """Logits of `head` on `graph`'s pooled features: the classifier, with the backbone run by the graph."""

    def __init__(self, graph, head: torch.nn.Module):
        super().__init__()
        self.graph, self.head = graph, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.graph(x))


def explanation_gallery(loaded, samples: list, logits: torch.Tensor, targets: torch.Tensor, out_dir: Path,
                        per_kind: int = 3, scored: int = 3, steps: int = 6, graph=None) -> tuple[Path, dict]:
    """Write `out_dir/gradcam.png` and return it with Grad-CAM's faithfulness on up to `scored` of its images.
    `graph`: the backbone as a session with a pooled map (module docstring); its head is `loaded.model.head`, a
    dropout and one linear layer."""
    from torchvision.transforms.v2.functional import center_crop

    from pixelforge.data.dataset import ImageDataset
    from pixelforge.explain.faithfulness import faithfulness_summary
    from pixelforge.explain.methods import heatmaps
    from pixelforge.explain.overlay import blend

    right, wrong = pick_examples(logits, targets, per_kind)
    chosen = right + wrong
    size = loaded.config.img_size
    dataset = ImageDataset([samples[i] for i in chosen], {c: i for i, c in enumerate(loaded.classes)},
                           loaded.short_side, loaded.transform)
    pixels = [dataset.pixels(k) for k in range(len(chosen))]
    x = torch.stack([loaded.transform(p) for p in pixels])
    preds = [int(logits[i].argmax()) for i in chosen]
    model = loaded.model.eval() if graph is None else GraphClassifier(graph, loaded.model.head).eval()
    if graph is None:
        maps = heatmaps(model, x, preds, "gradcam")
    else:
        from pixelforge.explain.cam import linear_head_cam

        with torch.no_grad():
            maps = linear_head_cam(graph.features_and_maps(x)[1], loaded.model.head[-1].weight, preds, x.shape[-2:])
    images, titles, colors = [], [], []
    for k, i in enumerate(chosen):
        image = np.ascontiguousarray(center_crop(pixels[k], [size, size]).permute(1, 2, 0).numpy())
        images.append(blend(image, maps[k]))
        score = float(logits[i].softmax(0).max())
        titles.append(f"true {samples[i].label}\npred {loaded.classes[preds[k]]} {score:.2f}")
        colors.append("crimson" if i in wrong else "darkgreen")
    figure = plot_gallery(images, titles, out_dir / "gradcam.png", columns=3, colors=colors)
    # Score the right and the wrong answers alike when there are both.
    order = [j for pair in zip(range(len(right)), range(len(right), len(chosen))) for j in pair]
    order += [j for j in range(len(chosen)) if j not in order]
    keep = order[:scored]
    faithfulness = faithfulness_summary(model, x[keep], maps[keep], [preds[j] for j in keep], steps)
    faithfulness["method"] = "gradcam"
    return figure, faithfulness


def gallery_html(src: str, faithfulness: dict | None) -> str:
    """The report's section: the gallery image (`src`, relative to the page) and the faithfulness numbers."""
    parts = ["<h2>Where the model looked (Grad-CAM)</h2><p>Most confident correct (green) and wrong (red) "
             f"predictions, heat map of the predicted class.</p><img src='{src}' alt='Grad-CAM gallery'>"]
    if faithfulness:
        f = faithfulness
        parts.append(f"<p>Faithfulness on {f['images']} of these images (deletion/insertion, {f['steps']} steps): "
                     f"deletion <b>{f['deletion_auc']:.3f}</b> vs random block order {f['random_deletion_auc']:.3f} (lower is "
                     f"better); insertion <b>{f['insertion_auc']:.3f}</b> vs random {f['random_insertion_auc']:.3f} "
                     "(higher is better). Compare methods with <code>pixelforge explain --method</code>.</p>")
    return "".join(parts)
