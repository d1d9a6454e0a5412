"""The caption decoder's options (docs/captioning.md, "Numbers"): the language model sees where it looked, not what
it saw; word dropout is a training-only noise; the attention reads the word just said (round five)."""

from __future__ import annotations

import pytest
import torch

from pixelforge.models.captioner import AttentionDecoder

pytestmark = pytest.mark.xdist_group("caption")
C = 12  # feature channels, the last two being each place's x, y as CaptionEncoder makes them


def features(content_seed: int, n: int = 9) -> torch.Tensor:
    """[1, n, C] features: random content channels, then the same x, y for every seed."""
    content = torch.randn(1, n, C - 2, generator=torch.Generator().manual_seed(content_seed))
    where = torch.stack([torch.linspace(-1, 1, n), torch.linspace(1, -1, n)], 1)[None]
    return torch.cat([content, where], 2)


def hidden_states(decoder: AttentionDecoder, feats: torch.Tensor, words: list[int]) -> list[torch.Tensor]:
    feats, projected, h, c = decoder.init_state(feats)
    states = []
    for word in words:
        _, h, c, _ = decoder.step(feats, projected, torch.tensor([word]), h, c)
        states.append(h)
    return states


@pytest.mark.parametrize("lstm_input, blind", [("where", True), ("context", False)])
def test_the_lstm_fed_where_it_looked_cannot_tell_what_it_saw(lstm_input, blind):
    torch.manual_seed(0)
    decoder = AttentionDecoder(7, C, 8, 16, 8, dropout=0.0, init_state="zero", lstm_input=lstm_input).eval()
    with torch.no_grad():  # attention that reads only x, y: both images are looked at in the same places
        decoder.att_features.weight[:, :C - 2] = 0.0
        first = hidden_states(decoder, features(1), [1, 4, 5])
        second = hidden_states(decoder, features(2), [1, 4, 5])
    same = all(torch.allclose(a, b, atol=1e-6) for a, b in zip(first, second))
    assert same is blind  # "context" (SAT) is the control: there h changes with what is seen


def test_word_dropout_changes_training_but_never_evaluation():
    torch.manual_seed(0)
    decoder = AttentionDecoder(7, C, 8, 16, 8, dropout=0.0)
    tokens = torch.tensor([[1, 4, 5, 6, 2], [1, 5, 4, 6, 2]])
    feats = torch.cat([features(1), features(2)])
    decoder.eval()
    with torch.no_grad():
        plain, _ = decoder(feats, tokens)
        dropped, _ = decoder(feats, tokens, word_dropout=0.9, unk=3)
    assert torch.equal(plain, dropped)
    decoder.train()
    torch.manual_seed(1)
    with torch.no_grad():
        trained, _ = decoder(feats, tokens, word_dropout=0.9, unk=3)
    assert not torch.allclose(trained, plain)


@pytest.mark.parametrize("attention, blind", [("where", True), ("content", False)])
def test_where_attention_lets_the_words_move_it_only_by_place(attention, blind):
    """How a change of h (the words said so far) shifts the attention scores must not depend on what the places
    hold: the words choose where to look, what is there only adds a saliency no word changes."""
    torch.manual_seed(0)
    decoder = AttentionDecoder(7, C, 8, 16, 8, dropout=0.0, lstm_input="where", attention=attention).eval()
    h1, h2, c = torch.randn(1, 16), torch.randn(1, 16), torch.zeros(1, 16)
    shifts = []
    with torch.no_grad():
        for seed in (1, 2):
            feats, projected, _, _ = decoder.init_state(features(seed))
            log_alpha = [decoder.step(feats, projected, torch.tensor([4]), h, c)[3].log() for h in (h1, h2)]
            shift = log_alpha[0] - log_alpha[1]
            shifts.append(shift - shift.mean())  # softmax's normalisation adds one constant per row
    assert torch.allclose(shifts[0], shifts[1], atol=1e-5) is blind


@pytest.mark.parametrize("attention_query, reads_word", [("h+word", True), ("h", False)])
def test_the_attention_query_reads_the_word_just_said(attention_query, reads_word):
    """Same h, same image, a different word just said: only the "h+word" query may look elsewhere (so "blue" can
    send the shape word to the blue object before h has read "blue")."""
    torch.manual_seed(0)
    decoder = AttentionDecoder(7, C, 8, 16, 8, dropout=0.0, lstm_input="where", attention_query=attention_query).eval()
    with torch.no_grad():
        feats, projected, h, c = decoder.init_state(features(1))
        alphas = [decoder.step(feats, projected, torch.tensor([word]), h, c)[3] for word in (4, 5)]
    assert (not torch.allclose(alphas[0], alphas[1], atol=1e-6)) is reads_word
