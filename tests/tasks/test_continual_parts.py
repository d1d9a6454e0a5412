"""Continual learning's parts on tiny tensors, against hand computations: the replay memory, the EWC penalty and
Fisher, LwF's distillation, the sequence metrics, growing the head, the drift tests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pixelforge.metrics.continual import average_accuracy, backward_transfer, forgetting
from pixelforge.metrics.drift import domain_auc, mmd_test, share_shift
from pixelforge.runs import folder as rd
from pixelforge.tasks.classify.continual.lineage import grow_state, grown_classes
from pixelforge.tasks.classify.continual.penalties import diagonal_fisher, ewc_penalty, lwf_distillation
from pixelforge.tasks.classify.continual.replay import ReplayMemory
from pixelforge.tasks.classify.continual.step import ContinualStep


def _stream(classes: str, n: int):
    return [(Path(f"{c}/{i:03d}.png"), c) for c in classes for i in range(n)]


def test_memory_is_class_balanced_and_shrinks_old_classes_when_new_ones_arrive():
    memory = ReplayMemory(12, seed=0)
    memory.add(_stream("ab", 50))
    assert memory.counts() == {"a": 6, "b": 6}
    memory.add(_stream("cd", 50))
    assert memory.counts() == {"a": 3, "b": 3, "c": 3, "d": 3}
    assert all(p.parent.name == label for p, label in memory.items())  # every image keeps its own label


def test_memory_is_a_seeded_reservoir_over_the_whole_stream():
    picks = [ReplayMemory(10, seed=s) for s in (0, 0, 1)]
    for memory in picks:
        memory.add(_stream("ab", 200))
    assert picks[0].items() == picks[1].items()  # same seed, same memory
    assert picks[0].items() != picks[2].items()
    # A reservoir is a uniform sample of the stream, not its first images: over seeds, late images are kept as
    # often as early ones.
    late = 0
    for seed in range(40):
        memory = ReplayMemory(10, seed=seed)
        memory.add(_stream("ab", 200))
        late += sum(int(p.stem) >= 100 for p, _ in memory.items())
    assert 0.4 < late / (40 * 10) < 0.6


def test_memory_state_survives_a_checkpoint_and_continues_identically(tmp_path):
    memory = ReplayMemory(8, seed=3)
    memory.add(_stream("ab", 30))
    step = ContinualStep(memory=memory.state_dict())
    rd.save_checkpoint({"task_state": step.state_dict()}, tmp_path / "x.ckpt")
    restored = ContinualStep()
    restored.load_state_dict(rd.load_checkpoint(tmp_path / "x.ckpt")["task_state"])  # weights_only load
    again = ReplayMemory.from_state(restored.memory)
    assert again.items() == memory.items()
    memory.add(_stream("c", 30))
    again.add(_stream("c", 30))
    assert again.items() == memory.items()  # the reservoir's random state came back too


def test_ewc_penalty_matches_a_hand_computation_on_the_grown_head():
    params = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]), "b": torch.tensor([0.5, -1.0, 7.0])}
    fisher = {"w": torch.tensor([[1.0, 0.0], [2.0, 0.5]]), "b": torch.tensor([4.0, 1.0])}  # 2 old rows
    anchor = {"w": torch.tensor([[0.0, 0.0], [3.0, 2.0]]), "b": torch.tensor([0.0, 0.0])}
    # w: 1*1 + 0*4 + 2*0 + 0.5*4 = 3;  b: 4*0.25 + 1*1 = 2;  the new row (9, 9 / 7) is free
    assert float(ewc_penalty(params, fisher, anchor)) == pytest.approx(5.0)


def test_fisher_is_the_mean_squared_per_image_gradient_of_the_log_likelihood():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    fisher = diagonal_fisher(model, [(x[:3], y[:3]), (x[3:], y[3:])])
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(5):  # one image at a time, by autograd
        model.zero_grad()
        torch.log_softmax(model(x[i:i + 1]), 1)[0, y[i]].backward()
        for n, p in model.named_parameters():
            expected[n] += p.grad ** 2 / 5
    for n in expected:
        torch.testing.assert_close(fisher[n], expected[n])


def test_lwf_distillation_is_t_squared_kl_on_the_old_classes():
    new = torch.tensor([[2.0, 0.0, 5.0], [0.0, 1.0, -3.0]])  # third column: a new class, ignored
    old = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    t = 2.0

    def soft(row):
        e = [math.exp(v / t) for v in row]
        return [v / sum(e) for v in e]

    kl = sum(sum(p * math.log(p / q) for p, q in zip(soft(o), soft(n[:2]))) for o, n in zip(old.tolist(), new.tolist()))
    assert float(lwf_distillation(new, old, t)) == pytest.approx(t * t * kl / 2, rel=1e-5)


def test_step_adds_the_strategy_terms_to_the_cross_entropy():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    batch = (torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]))
    plain = ContinualStep().training_step(model, batch)["loss"]
    params = dict(model.named_parameters())
    ewc = {"fisher": {"weight": torch.ones(2, 4)}, "anchor": {"weight": torch.zeros(2, 4)}}
    out = ContinualStep(params=params, ewc=ewc, ewc_lambda=10.0).training_step(model, batch)
    expected = plain + 5.0 * (model.weight[:2] ** 2).sum()
    torch.testing.assert_close(out["loss"], expected)
    teacher = nn.Linear(4, 2)
    out = ContinualStep(old_model=teacher, lwf_alpha=0.5).training_step(model, batch)
    torch.testing.assert_close(out["loss"], plain + 0.5 * lwf_distillation(model(batch[0]), teacher(batch[0])))


def test_sequence_metrics_match_a_hand_computed_matrix():
    r = [[0.9, None, None],
         [0.6, 0.8, None],
         [0.3, 0.7, 1.0]]
    assert average_accuracy(r) == pytest.approx((0.3 + 0.7 + 1.0) / 3)
    assert backward_transfer(r) == pytest.approx(((0.3 - 0.9) + (0.7 - 0.8)) / 2)
    # task 1: best before the end 0.9 -> 0.3 (0.6); task 2: 0.8 -> 0.7 (0.1)
    assert forgetting(r) == pytest.approx((0.6 + 0.1) / 2)
    assert backward_transfer([[0.5]]) is None and forgetting([[0.5]]) is None


def test_head_grows_with_old_rows_kept_and_old_class_indices_unchanged():
    assert grown_classes(["cat", "dog"], {"ant", "dog", "bee"}) == ["cat", "dog", "ant", "bee"]
    old = {"head.weight": torch.ones(2, 3), "head.bias": torch.tensor([1.0, 2.0]), "conv": torch.full((4,), 5.0)}
    fresh = {"head.weight": torch.zeros(4, 3), "head.bias": torch.zeros(4), "conv": torch.zeros(4)}
    grown = grow_state(old, fresh)
    assert grown["head.weight"][:2].eq(1).all() and grown["head.weight"][2:].eq(0).all()
    assert grown["head.bias"].tolist() == [1.0, 2.0, 0.0, 0.0] and grown["conv"].eq(5).all()


def test_mmd_and_domain_auc_tell_shifted_from_same_samples():
    rng = np.random.default_rng(0)
    a, same, shifted = rng.normal(size=(80, 8)), rng.normal(size=(80, 8)), rng.normal(size=(80, 8)) + 0.8
    assert mmd_test(a, same, permutations=200)["p_value"] > 0.05
    assert mmd_test(a, shifted, permutations=200)["p_value"] < 0.01
    assert domain_auc(a, same) < 0.65 < 0.9 < domain_auc(a, shifted)
    assert share_shift({"a": 0.5, "b": 0.5}, {"a": 0.2, "c": 0.8}) == pytest.approx(0.8)


def test_a_first_step_whose_parent_data_is_gone_names_the_parent_run(tmp_path):
    """The error named only the parent's data folder, a path the user had not typed in the failing command."""
    from pixelforge.config import save_config
    from pixelforge.errors import PixelforgeError
    from pixelforge.tasks.classify.continual.carry import training_samples
    from pixelforge.tasks.config import build_config

    parent = tmp_path / "task1-run"
    parent.mkdir()
    save_config(build_config(data=str(tmp_path / "moved-away"), model="simple_cnn", weights="none", img_size=16),
                parent / "config.yaml")
    with pytest.raises(PixelforgeError, match=rf"--continue-from {parent}: the first continual step re-reads that "
                                              rf"run's training data .*: {tmp_path / 'moved-away'}: no such file"):
        training_samples(parent)


def fake_parent_run(tmp_path, classes_json: str):
    """What a continual step reads of its parent before training: the config, the classes, that best.ckpt exists."""
    from pixelforge.config import save_config
    from pixelforge.tasks.config import build_config

    parent = tmp_path / "task1-run"
    (parent / "checkpoints").mkdir(parents=True)
    save_config(build_config(data=str(tmp_path), model="simple_cnn", weights="none", img_size=16),
                parent / "config.yaml")
    (parent / "classes.json").write_text(classes_json)
    (parent / "checkpoints" / "best.ckpt").write_bytes(b"")
    return parent


def test_a_step_with_another_model_names_both_models_before_the_size_rule(tmp_path):
    """`--continue-from RUN --model inception_v3` (RUN a 16 px simple_cnn) was refused with "--img-size 16 is too
    small for inception_v3", a size the user never typed (the parent's), instead of the model it differs in."""
    import pixelforge
    from pixelforge.errors import PixelforgeError

    parent = fake_parent_run(tmp_path, '["0", "1"]')
    with pytest.raises(PixelforgeError) as caught:
        pixelforge.train(str(tmp_path), continue_from=str(parent), model="inception_v3", out=str(tmp_path / "step"))
    assert str(caught.value) == (f"{parent}: trained with model 'simple_cnn', not 'inception_v3'; a continual step "
                                 "keeps the parent's model (leave --model out)")
    assert not (tmp_path / "step").exists()


def test_a_step_class_named_as_a_parent_class_but_for_its_case_is_refused_before_a_run_folder(cli, tmp_path):
    """`Cat/` after the parent's `cat` (a renamed folder) became a fifth class, trained apart from `cat`."""
    import numpy as np
    from PIL import Image

    data = tmp_path / "new-photos"
    for name in ("Cat", "dog"):
        (data / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(data / name / f"{i}.png")
    parent = fake_parent_run(tmp_path, '["cat", "dog"]')
    done = cli("train", "--data", data, "--continue-from", parent, "--out", tmp_path / "step")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"error: {data}: class 'Cat' differs only in case from the class 'cat' of the "
                                   f"parent run {parent}; name it 'cat' to train that class, or a name of its own "
                                   "for a new class")
    assert not (tmp_path / "step").exists()


def test_a_linear_step_is_end_to_end_so_it_is_not_said_to_cache_features_and_refuses_cache_features(tmp_path):
    """A step with --strategy linear trains the head on the parent's frozen backbone, end to end: precision auto
    said "the linear strategy trains its head on cached fp32 features", and a cache_features key was ignored."""
    from pixelforge.errors import PixelforgeError
    from pixelforge.tasks.config import build_config
    from pixelforge.tasks.registry import get_task

    task, keys = get_task("classify"), dict(data=str(tmp_path), model="simple_cnn", strategy="linear")
    assert "cached fp32 features" in task.bf16_reason(build_config(**keys))  # a first run: cached, so fp32
    step = build_config(**keys, continue_from=str(tmp_path / "parent"))
    assert task.bf16_reason(step) is None  # its backbone runs every batch, as in any end-to-end run
    with pytest.raises(PixelforgeError, match="reads cache_features only in a first run with --strategy linear "
                                              r"\(a continual step trains end to end\); leave it out"):
        task.check_fixed(build_config(**keys, continue_from=str(tmp_path / "parent"), cache_features=True))


def test_a_step_without_new_classes_is_named_so_on_the_heat_map():
    from pixelforge.tasks.classify.continual.sequence import task_names

    steps = [{"new_classes": ["0", "1"]}, {"new_classes": []}]
    assert task_names(steps) == ["1: 0,1", "2: no new classes"]
