"""What every task's `predict` rows and `/v1/predict` answers have (docs/deployment.md, "What every task returns"),
checked by the task tests on their own runs and packages and by tests/deploy/test_common_keys.py."""

from __future__ import annotations

import json
from pathlib import Path


def check_common_keys(rows: list[dict], task: str, output_key: str | None = None) -> None:
    """Each row has `path` and `task`; a row that wrote a file has `output`, the same path as the task's own key
    (`output_key`), naming a file that exists; a row that wrote nothing has no `output`."""
    assert rows
    for row in rows:
        assert list(row)[:2] == ["path", "task"] and row["path"] and row["task"] == task, row
        if output_key and not row.get("error"):
            assert row["output"] == str(row[output_key]) and Path(row["output"]).is_file(), row
        else:
            assert "output" not in row, row


def check_same_keys(from_run: list[dict], from_package: list[dict]) -> None:
    """A run's rows and its package's rows for the same images have the same keys."""
    assert [sorted(row) for row in from_run] == [sorted(row) for row in from_package]


def check_served_answer(body: dict, task: str, width: int, height: int) -> None:
    """A `/v1/predict` response names its task, and each upload's answer its task and the upload's own size."""
    assert body["task"] == task and body["predictions"]
    for answer in body["predictions"]:
        assert (answer["task"], answer["width"], answer["height"]) == (task, width, height), answer


def predict_json(cli, source, images: list, out: Path, *options) -> list[dict]:
    """`pixelforge predict SOURCE IMAGES --json --out OUT`'s rows (exit 1 allowed: a broken file among them)."""
    done = cli("predict", source, *images, "--json", "--out", out, *options)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def check_run_and_package(cli, run, package, images: list, out: Path, task: str, output_key: str | None,
                          *options) -> None:
    """`predict --json` from the run and from its package: the common keys on each, the same keys on both."""
    from_run = predict_json(cli, run, images, out / "run", *options)
    from_package = predict_json(cli, package, images, out / "package", *options)
    check_common_keys(from_run, task, output_key)
    check_common_keys(from_package, task, output_key)
    check_same_keys(from_run, from_package)
