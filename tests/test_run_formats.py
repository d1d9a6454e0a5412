"""Run folders outlive the pixelforge that wrote them: config.yaml and checkpoints record their writer and run
format; an older run (no stamp, a key since removed, a key since added) still evaluates, and one a newer pixelforge
wrote is one line naming its writer and the upgrade, never a traceback."""

from __future__ import annotations

import shutil

import pytest
import yaml

from pixelforge.errors import PixelforgeError
from pixelforge.formats import RUN_FORMAT


@pytest.fixture
def run(tiny_run, tmp_path):
    """A copy of the session's tiny run, to edit."""
    return shutil.copytree(tiny_run, tmp_path / "run")


def _edit_config(run, **changes):
    path = run / "config.yaml"
    values = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    path.write_text(yaml.safe_dump(values, sort_keys=False))


def test_a_run_records_the_pixelforge_and_run_format_that_wrote_it(tiny_run):
    import pixelforge
    from pixelforge.runs.folder import load_checkpoint

    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert config["pixelforge_version"] == pixelforge.__version__ and config["run_format"] == RUN_FORMAT
    for name in ("best.ckpt", "last.ckpt"):
        saved = load_checkpoint(tiny_run / "checkpoints" / name)
        assert saved["run_format"] == RUN_FORMAT and saved["pixelforge_version"] == pixelforge.__version__


@pytest.mark.parametrize("command", ["evaluate", "predict", "export", "resume"])
def test_a_config_of_a_newer_run_format_is_one_line_naming_the_writer_and_the_upgrade(cli, run, shapes_dir, command,
                                                                                       tmp_path):
    # a task and a value this pixelforge does not know: the upgrade is what to say, not "unknown task"
    _edit_config(run, pixelforge_version="9.0.0", run_format=RUN_FORMAT + 1, task="pose", schedule="polynomial")
    image = next((shapes_dir / "val" / "circle").glob("*.png"))
    args = {"evaluate": ["evaluate", run], "predict": ["predict", run, image],
            "export": ["export", run, "--out", tmp_path / "pkg"], "resume": ["train", "--resume", run]}[command]
    result = cli(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: {run / 'config.yaml'} was written by pixelforge 9.0.0 (run format "
                                     f"{RUN_FORMAT + 1}); this pixelforge (0.1.0) reads run formats up to {RUN_FORMAT}: "
                                     f"upgrade with pip install -U pixelforge")


def test_a_checkpoint_of_a_newer_run_format_is_one_line(run):
    import torch

    from pixelforge.api.evaluate import evaluate

    path = run / "checkpoints" / "best.ckpt"
    torch.save({**torch.load(path, weights_only=True), "run_format": RUN_FORMAT + 1, "pixelforge_version": "9.0.0"},
               path)
    with pytest.raises(PixelforgeError, match=r"best.ckpt was written by pixelforge 9.0.0 \(run format \d+\); .*"
                                              r"upgrade with pip install -U pixelforge"):
        evaluate(run)


def test_an_older_run_without_stamp_with_a_removed_key_and_without_a_new_key_evaluates(cli, run):
    # Written before formats were recorded, by a version that had `mixup_alpha` and not yet `ram_budget_gb`.
    _edit_config(run, pixelforge_version=None, run_format=None, ram_budget_gb=None, mixup_alpha=0.2)
    result = cli("evaluate", run, "--json")
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "mixup_alpha" in line]
    assert len(warning) == 1 and "ignoring 'mixup_alpha'" in warning[0]
    assert "a pixelforge from before versions were recorded" in warning[0]


def test_a_value_this_version_refuses_in_a_saved_config_is_one_line_naming_the_key(run):
    from pixelforge.tasks.config import load_config

    _edit_config(run, schedule="polynomial")
    with pytest.raises(PixelforgeError, match=r"config.yaml: schedule: .*polynomial.*written by pixelforge 0.1.0"):
        load_config(run / "config.yaml")


def test_a_run_config_as_a_new_runs_config_file_takes_the_stamp_but_still_refuses_a_typo(tiny_run, tmp_path):
    from pixelforge.tasks.config import build_config

    assert build_config(tiny_run / "config.yaml").model == "simple_cnn"  # the stamp is not an unknown key
    values = yaml.safe_load((tiny_run / "config.yaml").read_text())
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({**values, "epohcs": 3}))
    with pytest.raises(PixelforgeError, match="epohcs: Extra inputs are not permitted.*did you mean 'epochs'"):
        build_config(tmp_path / "typo.yaml")
