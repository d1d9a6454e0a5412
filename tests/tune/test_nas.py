"""`pixelforge nas`: architectures named by their spec train as classify runs; NSGA-II on accuracy and cost gives a
Pareto front, a hypervolume and a report; a Pareto model exports like any run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import pixelforge
from pixelforge.models.classifier import build_classifier
from pixelforge.models.nas_net import parse
from pixelforge.tune.nas import NasOptions, hypervolume, run_nas


def test_a_nas_name_is_its_architecture_and_bad_names_are_one_line_errors():
    small = build_classifier("nas_w0.5_d1-1-1-1_k3-3-3-3_e3-3-3-3_se0-0-0-0", 3, "none")
    big = build_classifier("nas_w1_d2-2-2-2_k5-5-5-5_e6-6-6-6_se1-1-1-1", 3, "none")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(big) > 10 * count(small)
    assert parse("nas_w1_d2-2-2-2_k5-5-5-5_e6-6-6-6_se1-1-1-1").name == "nas_w1_d2-2-2-2_k5-5-5-5_e6-6-6-6_se1-1-1-1"
    with pytest.raises(pixelforge.PixelforgeError, match="a NAS architecture is nas_w"):
        build_classifier("nas_w1_d2-2_k5", 3, "none")


def test_hypervolume_of_a_two_point_front():
    # (acc 0.5 at cost 1) and (acc 0.9 at cost 3), reference cost 4: 0.5 * (3 - 1) + 0.9 * (4 - 3)
    assert hypervolume([(0.9, 3.0), (0.5, 1.0)], 4.0) == pytest.approx(1.9)


@pytest.mark.slow
def test_nas_on_a_tiny_space_finds_a_front_and_its_models_export(tmp_path):
    rng = np.random.default_rng(0)
    for label, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(10):
            pixels = np.clip(rng.normal(colour, 40, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / label / f"{i}.png")
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump({"data": str(tmp_path / "data"), "img_size": 16, "epochs": 1, "batch_size": 8,
                                      "precision": "32", "quiet": True, "workers": 0,
                                      "calibrate": False}))  # each trial's temperature fit: not what NAS reads
    summary = run_nas(NasOptions(config, tmp_path / "nas", trials=3, latency="flops", seed=0, population=2))
    assert summary["n_complete"] == 3 and 1 <= len(summary["pareto"]) <= 3 and summary["hypervolume"] > 0
    costs = [row["mflops"] for row in summary["pareto"]]
    assert costs == sorted(costs)
    assert (tmp_path / "nas" / "pareto_front.png").stat().st_size > 10_000
    assert "Pareto front (" in (tmp_path / "nas" / "report.html").read_text()
    best = Path(summary["pareto"][-1]["run"])
    pixelforge.export(best, tmp_path / "pkg")  # a Pareto model is a run like any other
    assert any((tmp_path / "pkg").rglob("*.onnx"))


def test_a_seeded_search_continued_by_the_same_command_draws_new_architectures(tmp_path, monkeypatch):
    """NSGA-II made again with the same seed drew its first generation again: a search continued within it repeated
    its architectures."""
    import optuna

    from pixelforge.tune import nas

    class Cost:  # no training: an architecture's value is its size
        def __init__(self, opts):
            pass

        def __call__(self, trial):
            arch = nas.sample_arch(trial)
            trial.set_user_attr("model", arch.name)
            return arch.width, float(sum(arch.depth))

    monkeypatch.setattr(nas, "_NasObjective", Cost)
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump({"data": "digits", "quiet": True}))
    for trials in (2, 4):
        run_nas(NasOptions(config, tmp_path / "nas", trials=trials, latency="flops", seed=0, population=4))
    study = optuna.load_study(study_name="nas", storage=f"sqlite:///{tmp_path / 'nas' / 'study.db'}")
    assert len({t.user_attrs["model"] for t in study.trials}) == len(study.trials) == 4


def test_nas_refuses_another_task_s_config_as_such_in_one_line(cli, tmp_path):
    """A segment config was refused for its `arch` key ("not an option of task 'classify'"), as if it were a
    misspelt classify config; it is refused for its task, before the study folder is made."""
    (tmp_path / "masks").mkdir()
    config = tmp_path / "seg.yaml"
    config.write_text(yaml.safe_dump({"task": "segment", "data": str(tmp_path / "masks"), "arch": "unet"}))
    done = cli("nas", "--config", config, "--trials", "1", "--out", tmp_path / "study")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "task 'segment'" in lines[0] and "classify config" in lines[0], done.stderr
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("option, message", [
    ({"trials": 0}, "--trials 0: give at least 1"),
    ({"timeout": -1}, "--timeout -1: give a number of seconds above 0"),
    ({"population": 1}, "--population 1: give at least 2"),
    ({"out": "taken"}, "taken: --out is a file, not a study folder"),
])
def test_nas_option_mistakes_are_one_line_before_the_study_folder(tmp_path, option, message):
    """--trials 0 made an empty study and exited 0; --population 1 and an --out that is a file were tracebacks."""
    config = tmp_path / "nas.yaml"
    config.write_text(yaml.safe_dump({"data": "digits", "img_size": 16, "epochs": 1}))
    (tmp_path / "taken").write_text("mine")
    options = {"trials": 1, **option, "out": tmp_path / option.get("out", "study")}
    with pytest.raises(pixelforge.PixelforgeError, match=message):
        run_nas(NasOptions(config, **options))
    assert not (tmp_path / "study").exists() and (tmp_path / "taken").read_text() == "mine"
