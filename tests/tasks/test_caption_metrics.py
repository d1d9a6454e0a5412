"""Caption metrics and decoding: BLEU equals nltk's corpus_bleu, attribute match, and beam search that always
returns a caption."""

from __future__ import annotations

import numpy as np
import pytest

from pixelforge.deploy.runtime.caption_search import beam_search
from pixelforge.metrics.captions import attribute_match, bleu_from_statistics, bleu_statistics, corpus_bleu

HYPOTHESES = ["a small red circle to the left of a blue square", "a big green star", "a red circle", "",
              "there is a small purple triangle next to a large red star"]
REFERENCES = [["a small red circle to the left of a blue square", "a blue square to the right of a small red circle"],
              ["a large green star", "one large green star in the picture"], ["a small red circle", "there is a red circle"],
              ["a yellow square"], ["a small purple triangle to the left of a large red star", "a small purple triangle "
                                    "beside a large red star", "there is a small purple triangle next to a large star"]]


def test_bleu_equals_nltk_corpus_bleu():
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    ours = corpus_bleu(HYPOTHESES, REFERENCES)
    for n in range(1, 5):
        reference = 100 * nltk_bleu.corpus_bleu([[r.split() for r in refs] for refs in REFERENCES],
                                                [h.split() for h in HYPOTHESES], weights=(1 / n,) * n)
        assert ours[f"bleu{n}"] == pytest.approx(reference, abs=1e-6)
    assert 0 < ours["bleu4"] < ours["bleu1"] < 100


def test_bleu_of_shards_adds_up_to_the_corpus_bleu():
    whole = corpus_bleu(HYPOTHESES, REFERENCES)
    parts = np.add(bleu_statistics(HYPOTHESES[:2], REFERENCES[:2]), bleu_statistics(HYPOTHESES[2:], REFERENCES[2:]))
    assert bleu_from_statistics(parts) == pytest.approx(whole, abs=1e-9)


def test_attribute_match_needs_every_object_right_and_nothing_invented():
    objects = [{"colour": "red", "shape": "circle"}, {"colour": "blue", "shape": "square"}]
    assert attribute_match(["a small red circle to the left of a large blue square"], [objects]) == 1.0
    assert attribute_match(["a blue square to the right of a red circle"], [objects]) == 1.0
    assert attribute_match(["a small red circle"], [objects]) == 0.0  # one missing
    assert attribute_match(["a red square and a blue circle"], [objects]) == 0.0  # swapped attributes
    assert attribute_match(["a red circle a blue square and a red star"], [objects]) == 0.0  # invented


def _never_ending(vocab: int = 5, end: int = 2):
    def step(words, state):
        logits = np.tile(np.linspace(0.0, -1.0, vocab), (len(words), 1))
        logits[:, end] = -30.0  # <end> all but impossible
        return logits - np.log(np.exp(logits).sum(1, keepdims=True)), state, np.full((len(words), 4), 0.25)
    return step


@pytest.mark.parametrize("beam", [1, 3, 10])
def test_beam_search_returns_a_caption_when_no_beam_reaches_end(beam):
    hyp = beam_search(_never_ending(), (np.zeros((1, 3)),), start=1, end=2, beam=beam, max_len=7)
    assert len(hyp.tokens) == 7 and 2 not in hyp.tokens and not hyp.finished
    assert len(hyp.alphas) == 7


def test_beam_search_finds_what_greedy_misses():
    # Greedy takes word 3 first (0.6), but 4 then <end> is more likely overall (0.4 * 1.0 > 0.6 * 0.5).
    table = {1: [0, 0, 0, 0.6, 0.4], 3: [0, 0, 0.5, 0.5, 0], 4: [0, 0, 1.0, 0, 0]}

    def step(words, state):
        probs = np.array([table.get(int(w), [0, 0, 1.0, 0, 0]) for w in words]) + 1e-12
        return np.log(probs), state, np.ones((len(words), 1))

    greedy = beam_search(step, (np.zeros((1, 1)),), 1, 2, beam=1, max_len=5, length_penalty=0.0)
    beamed = beam_search(step, (np.zeros((1, 1)),), 1, 2, beam=3, max_len=5, length_penalty=0.0)
    assert greedy.tokens[0] == 3 and beamed.tokens == [4, 2]


def test_cider_equals_pycocoevalcap_on_the_tokenizer_words():
    cider = pytest.importorskip("pycocoevalcap.cider.cider")
    from pixelforge.metrics.captions import coco_scores
    from pixelforge.tasks.caption.evaluate import score_captions

    ours = score_captions(HYPOTHESES, REFERENCES)
    reference, _ = cider.Cider().compute_score({i: refs for i, refs in enumerate(REFERENCES)},
                                               {i: [h] for i, h in enumerate(HYPOTHESES)})
    assert ours["cider"] == pytest.approx(100 * reference, abs=1e-4)  # score_captions rounds to 4 places
    # Consensus: the caption equal to a reference scores above the one with a wrong word, the empty one lowest.
    corpus = [coco_scores([h, *HYPOTHESES[1:]], REFERENCES)["cider"] for h in
              (REFERENCES[0][1], "a small red circle to the left of a red square", "")]
    assert corpus[0] > corpus[1] > corpus[2]
