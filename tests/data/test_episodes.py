"""Episodic sampling (data/episodes.py) and how episodes are reported (metrics/fewshot.py)."""

import math

import numpy as np
import pytest

from pixelforge.data.episodes import sample_episodes
from pixelforge.errors import PixelforgeError
from pixelforge.metrics.fewshot import mean_confidence_interval

LABELS = np.repeat(np.arange(8), [20, 20, 20, 20, 20, 20, 20, 7])  # class 7 is too small for 5 + 15


def test_episodes_are_seeded_and_support_and_query_are_disjoint():
    first = sample_episodes(LABELS, ways=5, shots=5, queries=15, episodes=30, seed=3)
    again = sample_episodes(LABELS, ways=5, shots=5, queries=15, episodes=30, seed=3)
    other = sample_episodes(LABELS, ways=5, shots=5, queries=15, episodes=30, seed=4)
    assert all(a.classes == b.classes and np.array_equal(a.support, b.support) and np.array_equal(a.query, b.query)
               for a, b in zip(first, again))
    assert any(not np.array_equal(a.support, b.support) for a, b in zip(first, other))
    for episode in first:
        assert len(set(episode.classes)) == 5 and 7 not in episode.classes  # 7 has only 7 images
        assert not set(episode.support) & set(episode.query)
        assert len(set(episode.query)) == len(episode.query) == 75
        # Class by class, in episode order: what the evaluation's episode labels assume.
        assert LABELS[episode.support].tolist() == np.repeat(episode.classes, 5).tolist()
        assert LABELS[episode.query].tolist() == np.repeat(episode.classes, 15).tolist()
    assert len({e.classes for e in first}) > 1  # the classes vary between episodes


def test_too_few_large_enough_classes_is_a_one_line_error():
    with pytest.raises(PixelforgeError, match=r"8-way 5-shot .* 7 of its 8 classes"):
        sample_episodes(LABELS, ways=8, shots=5, queries=15, episodes=1, origin="data")


def test_confidence_interval_is_1_96_population_std_over_sqrt_episodes():
    accuracies = [0.6, 0.8, 0.9, 0.7]
    mean, half = mean_confidence_interval(accuracies)
    by_hand = 1.96 * math.sqrt(((0.15 ** 2) * 2 + (0.05 ** 2) * 2) / 4) / math.sqrt(4)
    assert mean == pytest.approx(0.75) and half == pytest.approx(by_hand) and half == pytest.approx(0.10957, abs=1e-5)
