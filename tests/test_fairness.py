"""Per-group metrics against hand-computed numbers; bootstrap intervals; where groups come from; the sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pixelforge.data.groups import has_groups, resolve_groups
from pixelforge.data.sources import Sample
from pixelforge.tasks.classify.balance import WeightedEpochSampler, balance_weights, build_train_sampler
from pixelforge.errors import PixelforgeError
from pixelforge.metrics.fairness import before_after, bootstrap_intervals, format_groups, group_metrics, per_group

# Two classes, two groups of four images. Group a: 3 of 4 right; group b: 1 of 4 right.
Y = torch.tensor([0, 0, 1, 1, 0, 1, 1, 1])
P = [0, 0, 1, 0, 1, 1, 0, 0]
G = ["a"] * 4 + ["b"] * 4


def _probs(preds, confidence=0.8):
    probs = torch.full((len(preds), 2), 1 - confidence)
    probs[torch.arange(len(preds)), torch.tensor(preds)] = confidence
    return probs


@pytest.fixture(scope="module")
def fixture_groups():
    return group_metrics(_probs(P), Y, G, ["cat", "dog"], train_groups=["a"] * 19 + ["b"], column="site")


def test_per_group_numbers_match_hand_computation(fixture_groups):
    a, b = fixture_groups["a"], fixture_groups["b"]
    assert (a["support"], b["support"]) == (4, 4)
    assert (a["accuracy"], b["accuracy"]) == (0.75, 0.25)
    # recall, macro over the classes present: a = (2/2 + 1/2) / 2; b = (0/1 + 1/3) / 2
    assert a["recall"] == 0.75 and b["recall"] == pytest.approx(1 / 6, abs=1e-4)
    # false-positive rate, one-vs-rest, macro: a = (1/2 + 0/2) / 2; b = (2/3 + 1/1) / 2
    assert a["false_positive_rate"] == 0.25 and b["false_positive_rate"] == pytest.approx(5 / 6, abs=1e-4)
    # every confidence is 0.8, so calibration error = |accuracy - 0.8|
    assert a["calibration_error"] == pytest.approx(0.05, abs=1e-4)
    assert b["calibration_error"] == pytest.approx(0.55, abs=1e-4)
    assert (a["train_images"], b["train_images"], b["train_share"]) == (19, 1, 0.05)
    assert a["accuracy_ci"][0] <= 0.75 <= a["accuracy_ci"][1]


def test_gaps_and_parity_differences_match_hand_computation(fixture_groups):
    s = fixture_groups["summary"]
    assert fixture_groups["largest_accuracy_gap"] == 0.5
    assert s["gaps"]["accuracy"] == {"gap": 0.5, "highest": "a", "lowest": "b"}
    # class "dog" is predicted for 1/4 of a and 2/4 of b: demographic parity difference 0.25 (the same for "cat")
    assert s["demographic_parity_difference"] == 0.25
    # class "dog": false-positive rates 0/2 (a) and 1/1 (b), so equalized odds difference 1.0
    assert s["equalized_odds_difference"] == 1.0
    assert s["per_class"]["dog"]["equalized_odds_difference"] == 1.0
    assert set(per_group(fixture_groups)) == {"a", "b"}


def test_gaps_above_the_threshold_are_flagged_with_a_small_group_warning(fixture_groups):
    flags = fixture_groups["summary"]["flags"]
    assert any(f.startswith("accuracy gap 0.500 between 'a' (0.750) and 'b' (0.250) exceeds 0.1") and "may be noise" in f
               for f in flags)
    assert any("equalized odds difference 1.000" in f for f in flags)
    assert any("group 'b' is 5.0% of the training images" in f for f in flags)
    assert "FLAG: accuracy gap" in format_groups(fixture_groups)


def test_equal_groups_raise_no_flags():
    out = group_metrics(_probs([0, 1, 0, 1]), torch.tensor([0, 1, 0, 1]), ["a", "a", "b", "b"], ["x", "y"])
    assert out["largest_accuracy_gap"] == 0.0 and out["summary"]["flags"] == []


def test_a_single_group_is_flagged_instead_of_reading_as_a_zero_gap():
    """Every image in one group printed 'largest accuracy gap 0.000' as if the groups had been compared."""
    out = group_metrics(_probs([0, 1, 1, 1]), torch.tensor([0, 1, 0, 1]), ["x"] * 4, ["a", "b"], column="site")
    assert out["summary"]["flags"] == ["only one group ('x') in column 'site' among the scored images: there is no "
                                       "gap to measure; check the column, or score a split that holds other groups"]
    assert "FLAG: only one group ('x')" in format_groups(out)


def test_reserved_group_names_are_refused():
    with pytest.raises(PixelforgeError, match="group value 'summary'"):
        group_metrics(_probs([0, 1]), torch.tensor([0, 1]), ["summary", "a"], ["x", "y"])


def test_before_after_lists_each_group_and_the_gaps(fixture_groups):
    after = group_metrics(_probs([0, 0, 1, 1, 0, 1, 1, 1]), Y, G, ["cat", "dog"])
    table = before_after(fixture_groups, after)
    assert table["groups"]["b"] == {"accuracy_before": 0.25, "accuracy_after": 1.0}
    assert table["overall"]["largest_accuracy_gap"] == [0.5, 0.0]


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 2000)
    p = np.where(rng.random(2000) < 0.8, y, (y + 1) % 3)
    small, large = bootstrap_intervals(y[:100], p[:100], 3), bootstrap_intervals(y, p, 3)
    assert small["accuracy"][0] <= (y[:100] == p[:100]).mean() <= small["accuracy"][1]
    assert large["accuracy"][1] - large["accuracy"][0] < small["accuracy"][1] - small["accuracy"][0]
    assert large["macro_f1"][0] < 0.8 < large["macro_f1"][1] + 0.02
    assert bootstrap_intervals(y, y, 3)["accuracy"] == [1.0, 1.0]
    assert bootstrap_intervals(y, p, 3) == large  # seeded


def test_groups_from_a_csv_column_and_a_clear_error_when_missing():
    samples = [Sample(Path("x.png"), "cat", None, {"site": "north"}), Sample(Path("y.png"), "dog", None, {"site": ""})]
    assert resolve_groups(samples, "site", "labels.csv") == ["north", "(none)"]
    assert has_groups(samples, "site") and not has_groups(samples, "group")
    with pytest.raises(PixelforgeError, match=r"labels.csv: no group column 'group' \(extra columns found: site\)"):
        resolve_groups(samples, "group", "labels.csv")


def test_groups_from_a_folder_mapping_file(tmp_path):
    mapping = tmp_path / "groups.csv"
    mapping.write_text("folder,group\ntrain/*/outdoor,outdoor\ntrain,indoor\n")
    samples = [Sample(tmp_path / "train" / "ants" / "outdoor" / "1.jpg", "ants"),
               Sample(tmp_path / "train" / "bees" / "2.jpg", "bees"),
               Sample(tmp_path / "train" / "bees" / "outdoor" / "deep" / "3.jpg", "bees")]
    assert resolve_groups(samples, str(mapping), "data") == ["outdoor", "indoor", "outdoor"]
    with pytest.raises(PixelforgeError, match="no folder row matches"):
        resolve_groups([Sample(tmp_path / "other" / "4.jpg", "ants")], str(mapping), "data")
    mapping.write_text("folder,group\ntrain/*/outdoor,\ntrain,indoor\n")  # an empty cell: named as a CSV's is
    assert resolve_groups(samples, str(mapping), "data") == ["(none)", "indoor", "(none)"]


def test_weighted_sampler_draws_groups_equally_and_replays_on_resume():
    keys = ["common"] * 90 + ["rare"] * 10
    sampler = WeightedEpochSampler(balance_weights(keys), seed=3)
    sampler.set_position(epoch=2, skip=0)
    order = list(sampler)
    assert len(order) == 100
    sampler.set_position(epoch=2, skip=40)
    assert list(sampler) == order[40:]  # a resumed epoch replays the same remaining draws
    draws = []
    for epoch in range(20):
        sampler.set_position(epoch, 0)
        draws += [keys[i] for i in sampler]
    assert 0.4 < draws.count("rare") / len(draws) < 0.6


def test_train_sampler_repeats_weights_for_cached_feature_views():
    class Cfg:
        balance, groups, seed, data = "classes", "group", 0, "mem"

    samples = [Sample(Path(f"{i}.png"), "a" if i < 3 else "b") for i in range(4)]
    sampler = build_train_sampler(Cfg, samples, size=8)  # two views of four images
    assert isinstance(sampler, WeightedEpochSampler) and len(sampler.weights) == 8
    assert sampler.weights[3] == sampler.weights[7] == 1.0 and sampler.weights[0] == pytest.approx(1 / 3)


def test_parity_matches_fairlearn_when_every_group_has_both_outcomes(fixture_groups):
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    y, p, g = Y.numpy() == 1, np.array(P) == 1, np.array(G)
    dog = fixture_groups["summary"]["per_class"]["dog"]
    assert dog["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(y, p, sensitive_features=g))
    assert dog["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(y, p, sensitive_features=g))


def test_a_group_without_a_class_does_not_count_as_unfair_to_it():
    # group b has no "dog" at all: its true-positive rate for dogs is undefined, not 0
    y, preds = torch.tensor([0, 1, 0, 0]), [0, 1, 0, 0]
    out = group_metrics(_probs(preds), y, ["a", "a", "b", "b"], ["cat", "dog"])
    assert out["summary"]["per_class"]["dog"]["equalized_odds_difference"] == 0.0


def test_a_group_mapping_file_not_in_utf8_is_one_line(tmp_path):
    """It was a UnicodeDecodeError traceback; a label CSV already gave this line."""
    mapping = tmp_path / "groups.csv"
    mapping.write_bytes("folder,group\ntrain,café\n".encode("latin-1"))
    with pytest.raises(PixelforgeError, match=r"groups\.csv: not UTF-8 text \(byte 0xe9 at offset 22\)"):
        resolve_groups([Sample(tmp_path / "train" / "1.jpg", "ants")], str(mapping), "data")
