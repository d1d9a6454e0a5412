"""`pixelforge evaluate --task fewshot --data DIR --ways N --shots K --episodes E`: episodic N-way K-shot accuracy.

Every image of DIR (all its splits: nothing is trained, so every class is new to the backbone) is embedded once,
and kept on disk for the next evaluation of the same files (cache.py); the episodes (data/episodes.py) then only
index into those embeddings, so 600 episodes cost a few matrix products, not 600 passes of the backbone. Reported
as the literature does: mean accuracy +- the 95% interval (metrics/fewshot.py).
"""

from __future__ import annotations

import time

import torch

from pixelforge.data.episodes import sample_episodes
from pixelforge.data.sources import resolve_data
from pixelforge.engine.threads import torch_threads
from pixelforge.metrics.fewshot import mean_confidence_interval
from pixelforge.tasks.classify.fewshot.cache import cached_embeddings
from pixelforge.tasks.classify.fewshot.embed import Embedder, EmbeddingOptions
from pixelforge.tasks.classify.fewshot.predict import choose_method, classify_embeddings

DEFAULTS = {"ways": 5, "shots": 5, "queries": 15, "episodes": 600, "seed": 0}  # the usual protocol (Chen et al. 2019)


def embed_dataset(data, progress=None, cache: bool = True,
                  **embedding) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(embeddings [n, dim], labels [n], class names) of every image of `data` (a path or built-in name, or the
    source it resolves to), each embedded once (and, with `cache`, kept on disk for the next evaluation of the same
    files: cache.py)."""
    source = data if hasattr(data, "samples") else resolve_data(data)
    options = EmbeddingOptions(**embedding)

    def compute() -> torch.Tensor:
        embedder = Embedder(options, progress)
        vectors = embedder(source.samples, "images")
        embedder.close()
        return vectors

    vectors = cached_embeddings(options, source.samples, compute) if cache else compute()
    return vectors, _labels(source), source.classes


def _labels(source) -> torch.Tensor:
    index = {name: i for i, name in enumerate(source.classes)}
    return torch.tensor([index[s.label] for s in source.samples])


def run_episodes(vectors: torch.Tensor, labels: torch.Tensor, *, ways: int, shots: int, queries: int, episodes: int,
                 seed: int = 0, method: str = "prototypes", origin: str = "data") -> list[float]:
    """Per-episode query accuracy of `method` on precomputed embeddings."""
    accuracies = []
    # One thread: an episode's products are tiny, and on 2 busy cores the thread pool's fork/join cost 30 ms per
    # prototype sum (engine/threads.py), 600 episodes 30 s instead of under one.
    with torch_threads(1):
        for episode in sample_episodes(labels.numpy(), ways, shots, queries, episodes, seed, origin):
            accuracies.append(_episode_accuracy(vectors, episode, ways, shots, queries, method, seed))
    return accuracies


def _episode_accuracy(vectors, episode, ways: int, shots: int, queries: int, method: str, seed: int) -> float:
    support_labels = torch.arange(ways).repeat_interleave(shots)  # episodes list support and query class by class
    query_labels = torch.arange(ways).repeat_interleave(queries)
    scores = classify_embeddings(vectors[episode.support], support_labels, vectors[episode.query], ways, method, seed)
    return float((scores.argmax(1) == query_labels).float().mean())


def evaluate_episodes(data: str, *, ways: int | None = None, shots: int | None = None, queries: int | None = None,
                      episodes: int | None = None, seed: int | None = None, finetune_head: bool = False,
                      progress=None, **embedding) -> dict:
    """Mean N-way K-shot accuracy over seeded episodes, with its 95% confidence interval.

    Example:
        >>> evaluate_episodes("digits", ways=5, shots=5, episodes=600)["accuracy"]  # doctest: +SKIP
        0.93
    """
    given = {"ways": ways, "shots": shots, "queries": queries, "episodes": episodes, "seed": seed}
    protocol = {k: DEFAULTS[k] if v is None else v for k, v in given.items()}
    source = resolve_data(data)
    # Data too small for the protocol is refused before the backbone runs (embedding digits takes minutes on CPU);
    # zero episodes drawn runs only the class-size check.
    sample_episodes(_labels(source).numpy(), protocol["ways"], protocol["shots"], protocol["queries"], 0,
                    protocol["seed"], str(data))
    started = time.perf_counter()
    vectors, labels, classes = embed_dataset(source, progress, **embedding)
    embed_seconds = time.perf_counter() - started
    method = choose_method(finetune_head, protocol["shots"])
    accuracies = run_episodes(vectors, labels, method=method, origin=str(data), **protocol)
    mean, half = mean_confidence_interval(accuracies)
    options = EmbeddingOptions(**embedding)
    return {"accuracy": mean, "ci95": half, **protocol, "method": method, "model": options.model,
            "img_size": options.img_size, "tta": options.tta, "num_classes": len(classes), "num_images": len(labels),
            "embed_seconds": round(embed_seconds, 2), "data": str(data)}


def format_episodes(metrics: dict) -> str:
    """One line for the CLI: '5-way 5-shot: accuracy 93.12% +- 0.45% (95% CI, 600 episodes of 15 queries/class)'."""
    return (f"{metrics['ways']}-way {metrics['shots']}-shot ({metrics['method']}, {metrics['model']}): accuracy "
            f"{100 * metrics['accuracy']:.2f}% +- {100 * metrics['ci95']:.2f}% (95% CI, {metrics['episodes']} episodes "
            f"of {metrics['queries']} queries per class; {metrics['num_images']} images of {metrics['num_classes']} "
            f"classes)")
