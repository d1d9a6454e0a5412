"""Decoding captions, in numpy, for PyTorch and ONNX Runtime alike: beam search with a length penalty, and the
image preprocessing of a captioning model.

The same `beam_search` runs behind `pixelforge predict RUN` (a step function wrapping the PyTorch decoder) and the
torch-free package runtime (a step function wrapping the exported ONNX decoder step), so the export's parity check
compares the models, not two search implementations.

Beam search always returns a caption: when no beam reaches <end> within `max_len` words (an untrained model, a
too-short limit), the unfinished beams compete with the finished ones, as they are. The best-known tutorial implementation crashes
there (an empty list of finished captions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image


@dataclass
class Hypothesis:
    tokens: list[int]  # word ids, without <start>; ends with <end> when finished
    log_prob: float
    alphas: list[np.ndarray]  # attention weights [N] for each word
    finished: bool

    def score(self, length_penalty: float) -> float:
        """GNMT's length normalisation (Wu et al. 2016): log p / ((5 + length) / 6) ** alpha."""
        return self.log_prob / (((5.0 + len(self.tokens)) / 6.0) ** length_penalty)


# step(previous words [K], state) -> (log-probabilities [K, V], new state, attention [K, N]); the state is a tuple
# of arrays whose first axis is the beam.
StepFn = Callable[[np.ndarray, tuple], tuple[np.ndarray, tuple, np.ndarray]]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def beam_search(step: StepFn, state: tuple, start: int, end: int, beam: int = 3, max_len: int = 24,
                length_penalty: float = 0.0) -> Hypothesis:
    """The best caption for one image (beam 1 is greedy decoding).

    Example:
        >>> def step(words, state):  # a "model" that all but never says <end> (id 1)
        ...     return np.tile([-0.1, -50.0, -2.4], (len(words), 1)), state, np.ones((len(words), 1))
        >>> len(beam_search(step, (np.zeros((1, 1)),), start=0, end=1, beam=2, max_len=5).tokens)
        5
    """
    alive = [Hypothesis([], 0.0, [], False)]
    finished: list[Hypothesis] = []
    words = np.array([start], dtype=np.int64)
    for length in range(1, max_len + 1):
        log_probs, state, alpha = step(words, state)
        totals = np.array([h.log_prob for h in alive])[:, None] + log_probs
        flat = np.argsort(-totals, axis=None, kind="stable")[: 2 * beam]  # enough to keep `beam` alive after ends
        rows, cols = np.unravel_index(flat, totals.shape)
        keep, next_alive = [], []
        for row, col in zip(rows, cols):
            h = alive[row]
            grown = Hypothesis([*h.tokens, int(col)], float(totals[row, col]), [*h.alphas, alpha[row]], col == end)
            if grown.finished:
                finished.append(grown)
            elif len(next_alive) < beam:
                next_alive.append(grown)
                keep.append(row)
            if len(next_alive) == beam:
                break
        # Stop when `beam` captions are finished and none alive can still beat the best of them (scores only fall).
        if len(finished) >= beam and (not next_alive or max(f.score(length_penalty) for f in finished)
                                      >= max(a.log_prob for a in next_alive) / (((5.0 + max_len) / 6.0) ** length_penalty)):
            return max(finished, key=lambda h: h.score(length_penalty))
        alive = next_alive
        if not alive or length == max_len:
            break
        index = np.asarray(keep)
        state = tuple(s[index] for s in state)
        words = np.array([h.tokens[-1] for h in alive], dtype=np.int64)
    # At the length limit the unfinished beams compete too: when no beam reached <end> they are the only answer.
    return max([*finished, *alive], key=lambda h: h.score(length_penalty))


def caption_input(image, size: int, mean, std) -> np.ndarray:
    """An image (PIL or HxWxC uint8) as the model's float32 [1, 3, size, size]: RGB, resized whole (bilinear),
    scaled to [0, 1], normalised. Training, PyTorch prediction and the package runtime all call this."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    rgb = image.convert("RGB").resize((size, size), Image.BILINEAR)
    x = np.asarray(rgb, dtype=np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def attention_grid(alphas: list[np.ndarray]) -> list[list[list[float]]]:
    """Attention weights [words][N] as square grids [words][g][g] (N = g * g places), rounded for JSON."""
    out = []
    for a in alphas:
        side = int(round(np.sqrt(a.size)))
        out.append(np.round(np.asarray(a, np.float64).reshape(side, side), 4).tolist())
    return out
