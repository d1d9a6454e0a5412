"""Prototypes and the logistic head of models/fewshot.py on hand-made embeddings."""

import torch

from pixelforge.models.fewshot import cosine_scores, fit_logistic_head, logistic_scores, prototypes


def test_prototypes_are_class_means_of_normalised_embeddings():
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(12, 6, generator=generator) * torch.rand(12, 1, generator=generator) * 10
    labels = torch.tensor([0, 1, 2] * 4)
    protos = prototypes(embeddings, labels, 3)
    unit = embeddings / embeddings.norm(dim=1, keepdim=True)
    for c in range(3):
        assert torch.allclose(protos[c], unit[labels == c].mean(0), atol=1e-6)
    # A raw embedding's length must not pull its prototype: scaling one image's vector changes nothing.
    scaled = embeddings.clone()
    scaled[0] *= 100
    assert torch.allclose(prototypes(scaled, labels, 3), protos, atol=1e-6)


def test_queries_go_to_the_prototype_with_the_highest_cosine():
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    queries = torch.tensor([[5.0, 1.0], [0.2, 3.0], [-1.0, -0.5]])
    scores = cosine_scores(queries, protos)
    assert scores.argmax(1).tolist() == [0, 1, 1]
    assert torch.allclose(scores[0], torch.tensor([5.0, 1.0]) / 26 ** 0.5)


def test_logistic_head_fits_separable_support_and_returns_probabilities():
    generator = torch.Generator().manual_seed(1)
    centres = torch.eye(4)[:3] * 3
    labels = torch.arange(3).repeat_interleave(5)
    support = centres[labels] + 0.3 * torch.randn(15, 4, generator=generator)
    head = fit_logistic_head(support, labels)
    scores = logistic_scores(head, centres + 0.1, 3)
    assert scores.argmax(1).tolist() == [0, 1, 2]
    assert torch.allclose(scores.sum(1), torch.ones(3), atol=1e-5)
