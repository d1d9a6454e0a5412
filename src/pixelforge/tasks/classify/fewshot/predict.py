"""`pixelforge fewshot`: classify query images by a few labelled support images, with no training of the backbone.

Support and query images are embedded once (embed.py); the query goes to the nearest class prototype by cosine
(models/fewshot.py), or, with `finetune_head` and at least `HEAD_MIN_SHOTS` images in every support class, to the
class a logistic-regression head fitted on the support embeddings prefers. Below that the prototypes are used and a
warning says so (the result's `method` tells which).
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import torch

from pixelforge.errors import PixelforgeError
from pixelforge.models.fewshot import HEAD_MIN_SHOTS, cosine_scores, fit_logistic_head, logistic_scores, prototypes
from pixelforge.tasks.classify.fewshot.embed import Embedder, EmbeddingOptions
from pixelforge.tasks.classify.fewshot.folders import read_query, read_support

log = logging.getLogger("pixelforge")


def choose_method(finetune_head: bool, smallest_class: int) -> str:
    """'logistic' when the head was asked for and every class has enough support images, else 'prototypes'."""
    if finetune_head and smallest_class < HEAD_MIN_SHOTS:
        log.warning("--finetune-head needs %d support images in every class (the smallest has %d): "
                    "using the prototypes", HEAD_MIN_SHOTS, smallest_class)
    return "logistic" if finetune_head and smallest_class >= HEAD_MIN_SHOTS else "prototypes"


def classify_embeddings(support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor,
                        num_classes: int, method: str, seed: int = 0) -> torch.Tensor:
    """[n_query, num_classes] scores: cosine similarities (prototypes) or probabilities (logistic)."""
    if method == "logistic":
        return logistic_scores(fit_logistic_head(support, support_labels, seed), query, num_classes)
    return cosine_scores(query, prototypes(support, support_labels, num_classes))


def _check_arguments(shots, embedding: dict) -> None:
    """From Python, a misspelt option or a `shots` that is no count is one line (were TypeErrors), before any work."""
    known = [f.name for f in fields(EmbeddingOptions)]
    unknown = sorted(set(embedding) - set(known))
    if unknown:
        raise PixelforgeError(f"fewshot: {', '.join(unknown)}: no such option; the options: shots, seed, "
                              f"finetune_head, out, {', '.join(known)}")
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
        raise PixelforgeError(f"fewshot: shots={shots!r}: a whole number of images per class, 1 or more")


def few_shot_predict(support: str | Path, query: str | Path, *, shots: int | None = None, seed: int = 0,
                     finetune_head: bool = False, out: str | Path | None = None, progress=None,
                     **embedding) -> dict:
    """Predict the query images from the support folder's classes; score them when the query has class folders.

    `embedding` takes `EmbeddingOptions` keys (model, weights, img_size, tta). Returns
    `{"accuracy", "n_query", "predictions": [{"path", "label", "score"[, "truth"]}], ...}`; accuracy is None for
    unlabelled queries. With `out`, writes predictions.json and figures there (report.py).

    Example:
        >>> result = few_shot_predict("support/", "query/", shots=5)  # doctest: +SKIP
        >>> result["accuracy"], result["predictions"][0]["label"]  # doctest: +SKIP
        (0.93, 'ants')
    """
    from pixelforge.tasks.classify.fewshot.report import check_out, write_report

    _check_arguments(shots, embedding)
    out = check_out(Path(out)) if out is not None else None
    support_samples, classes = read_support(Path(support), shots, seed)
    queries = read_query(Path(query), classes, Path(support))
    index = {name: i for i, name in enumerate(classes)}
    labels = torch.tensor([index[s.label] for s in support_samples])
    method = choose_method(finetune_head, int(torch.bincount(labels).min()))
    options = EmbeddingOptions(**embedding)
    embedder = Embedder(options, progress)
    support_vectors = embedder(support_samples, "support images")
    # A query file that cannot be decoded is left out and named, as `predict` does; the support set is the model,
    # so a broken support image stays an error (above).
    query_vectors, query_samples, unreadable = embedder.readable(queries.samples, "query images")
    embedder.close()
    if not query_samples:
        raise PixelforgeError(f"no query image could be decoded: {unreadable[0]}"
                              + (f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""))
    scores = classify_embeddings(support_vectors, labels, query_vectors, len(classes), method, seed)
    best, predicted = scores.max(1)
    predictions = [{"path": str(s.path), "label": classes[p], "score": round(float(b), 4)}
                   for s, p, b in zip(query_samples, predicted.tolist(), best.tolist())]
    accuracy = None
    if queries.labelled:
        for row, sample in zip(predictions, query_samples):
            row["truth"] = sample.label
        accuracy = sum(r["label"] == r["truth"] for r in predictions) / len(predictions)
    result = {"accuracy": accuracy, "n_query": len(predictions), "predictions": predictions, "classes": classes,
              "unreadable": unreadable,
              "support_per_class": {c: int(n) for c, n in zip(classes, torch.bincount(labels).tolist())},
              "method": method, "score": "probability" if method == "logistic" else "cosine similarity",
              "model": options.model, "img_size": options.img_size, "tta": options.tta,
              "shots": shots, "seed": seed, "feature_engine": embedder.describe()}
    if out is not None:
        result["figures"] = write_report(out, result, query_samples)
    return result
