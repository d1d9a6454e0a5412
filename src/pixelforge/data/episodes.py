"""Episodes for few-shot evaluation: N classes, K support and Q query images of each, drawn with a seed.

The N-way K-shot protocol of Vinyals et al. 2016 (Matching Networks) and Snell et al. 2017 (Prototypical Networks):
each episode draws `ways` classes, then `shots + queries` distinct images of each class, the first `shots` as the
support set and the rest as queries, so support and query never share an image. The same seed gives the same
episodes, which is what lets two backbones be compared on identical tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixelforge.errors import PixelforgeError


@dataclass(frozen=True)
class Episode:
    classes: tuple[int, ...]  # the labels drawn for this episode, in episode order (episode label i = classes[i])
    support: np.ndarray  # [ways * shots] indices into the dataset, class by class
    query: np.ndarray  # [ways * queries] indices, class by class


def sample_episodes(labels, ways: int, shots: int, queries: int, episodes: int, seed: int = 0,
                    origin: str = "data") -> list[Episode]:
    """`episodes` seeded N-way K-shot episodes over integer `labels` (one per image).

    Only classes with at least `shots + queries` images can be drawn; fewer than `ways` such classes is a one-line
    error that says what the data holds.

    Example:
        >>> eps = sample_episodes([0] * 6 + [1] * 6 + [2] * 6, ways=2, shots=1, queries=2, episodes=3)
        >>> len(eps), eps[0].support.shape, eps[0].query.shape
        (3, (2,), (4,))
    """
    labels = np.asarray(labels)
    need = shots + queries
    by_class = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
    eligible = np.array(sorted(c for c, idx in by_class.items() if len(idx) >= need))
    if len(eligible) < ways:
        raise PixelforgeError(f"{origin}: {ways}-way {shots}-shot with {queries} queries needs {ways} classes of at "
                              f"least {need} images; {len(eligible)} of its {len(by_class)} classes have that many "
                              f"(lower --ways, --shots or --queries)")
    rng = np.random.default_rng(seed)
    drawn = []
    for _ in range(episodes):
        classes = rng.choice(eligible, size=ways, replace=False)
        picks = [rng.choice(by_class[int(c)], size=need, replace=False) for c in classes]
        drawn.append(Episode(tuple(int(c) for c in classes), np.concatenate([p[:shots] for p in picks]),
                             np.concatenate([p[shots:] for p in picks])))
    return drawn
