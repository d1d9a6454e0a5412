"""A run folder someone sent you is data, not code: its checkpoints load with `weights_only=True`."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
import torch

from pixelforge.engine.loop import rng_state, set_rng_state
from pixelforge.errors import PixelforgeError
from pixelforge.runs.folder import load_checkpoint


class _Payload:
    """Unpickling this writes `marker`: what a hostile checkpoint would do (os.system, a downloader...)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


@pytest.fixture
def hostile_run(tmp_path, tiny_run):
    run = tmp_path / "sent-to-you"
    shutil.copytree(tiny_run, run)
    marker = tmp_path / "payload-ran"
    for name in ("best.ckpt", "last.ckpt"):
        state = load_checkpoint(run / "checkpoints" / name)
        state["payload"] = _Payload(marker)
        torch.save(state, run / "checkpoints" / name)
    return run, marker


def test_evaluate_and_predict_refuse_a_checkpoint_carrying_code_without_running_it(hostile_run, shapes_dir):
    import pixelforge

    run, marker = hostile_run
    image = next(p for p in sorted(shapes_dir.rglob("*")) if p.suffix == ".png")
    for call in (lambda: pixelforge.evaluate(run), lambda: pixelforge.predict(run, [image])):
        with pytest.raises(PixelforgeError) as raised:
            call()
        message = str(raised.value)
        assert "refuses to load" in message and "weights_only" in message and "\n" not in message
        assert str(run / "checkpoints") in message
        assert not marker.exists(), "the checkpoint's pickle ran code"


def test_the_cli_exits_2_on_a_checkpoint_carrying_code(cli, hostile_run):
    run, marker = hostile_run
    result = cli("evaluate", run)
    assert result.returncode == 2, result.stderr
    assert "refuses to load" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_a_fresh_checkpoint_holds_nothing_but_weights_only_types(tiny_run):
    saved = torch.load(tiny_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert {"model", "loop", "rng"} <= set(saved)


def test_a_checkpoint_with_the_older_numpy_rng_state_still_loads_and_restores(tmp_path):
    np.random.seed(7)
    random.seed(7)
    torch.manual_seed(7)
    older = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    expected = (np.random.rand(), random.random(), torch.rand(1).item())
    torch.save({"model": {}, "rng": older}, tmp_path / "last.ckpt")  # what the previous version wrote
    set_rng_state(load_checkpoint(tmp_path / "last.ckpt")["rng"])
    assert (np.random.rand(), random.random(), torch.rand(1).item()) == expected


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    torch.save({"rng": rng_state()}, tmp_path / "c.ckpt")
    expected = (np.random.rand(), random.random(), torch.rand(1).item())
    set_rng_state(torch.load(tmp_path / "c.ckpt", weights_only=True)["rng"])
    assert (np.random.rand(), random.random(), torch.rand(1).item()) == expected


def test_older_checkpoints_numpy_numbers_load_but_not_numpy_object_arrays(tmp_path):
    torch.save({"loop": {"best_metric": np.float64(0.75), "epoch": np.int64(3)}}, tmp_path / "numbers.ckpt")
    loop = load_checkpoint(tmp_path / "numbers.ckpt")["loop"]
    assert loop == {"best_metric": 0.75, "epoch": 3}
    torch.save({"rng": np.array([_Payload(tmp_path / "ran")], dtype=object)}, tmp_path / "objects.ckpt")
    with pytest.raises(PixelforgeError, match="refuses to load"):
        load_checkpoint(tmp_path / "objects.ckpt")
    assert not (tmp_path / "ran").exists()
