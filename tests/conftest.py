"""Shared fixtures: tiny datasets and a tiny trained run, so every test stays within seconds on 2 CPU cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two xdist workers on two cores: one intra-op thread each, instead of both fighting over both cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

HYMENOPTERA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hymenoptera" / "train"


def pytest_collection_modifyitems(config, items):
    """Under xdist, ungrouped slow tests first; everything else in its usual order.

    `pytest -n 2 --dist loadgroup` hands out each ungrouped test as its own unit in collection order (xdist_group
    modules go first, as whole units, largest first). In file order the longest trainings (the quickstart, the
    benchmark smoke run) came last, where one worker could still be in a minute-long test with the other out of
    work; with them first, the many short tests fill both workers evenly at the end. Grouped modules keep their
    order (their tests share fixtures and may rely on it), and a plain `pytest` run keeps file order.
    """
    if not hasattr(config, "workerinput"):  # not an xdist worker
        return

    def promoted(item) -> bool:
        return item.get_closest_marker("slow") is not None and item.get_closest_marker("xdist_group") is None

    items.sort(key=lambda item: not promoted(item))  # a stable sort: the rest keep their relative order


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Built-in datasets are written to a per-session cache, never the user's home."""
    os.environ["PIXELFORGE_HOME"] = str(tmp_path_factory.mktemp("pixelforge_home"))


@pytest.fixture(scope="session")
def shapes_dir(_isolated_cache) -> Path:
    from pixelforge.data.builtin import materialize

    return materialize("shapes")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, shapes_dir) -> Path:
    """A simple_cnn trained for 3 epochs at 32 px on the built-in shapes set (about 10 s)."""
    import pixelforge

    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = pixelforge.train(str(shapes_dir), model="simple_cnn", weights="none", img_size=32, epochs=3,
                              batch_size=16, strategy="full", lr=3e-3, out=str(out), quiet=True)
    return result.run_dir


@pytest.fixture(scope="session")
def hymenoptera() -> Path:
    if not HYMENOPTERA.is_dir():
        pytest.skip(f"real data not found at {HYMENOPTERA}")
    return HYMENOPTERA


@pytest.fixture(scope="session")
def cli(tmp_path_factory):
    """Run `pixelforge ARGS...` in a process of its own (as a user would) and return the CompletedProcess.

    The process is forked from a zygote that has imported torch and the rest once (tests/cli_zygote.py); `fresh=True`
    (or an `env` other than this process's, or any other `subprocess.run` option) starts a new interpreter instead.
    """
    import subprocess
    import sys

    from tests.cli_zygote import Zygote

    zygote = Zygote(tmp_path_factory.mktemp("cli"))

    def run(*args, timeout=600, fresh=False, cwd=None, env=None, **kwargs):
        if fresh or kwargs or (env is not None and env != dict(os.environ)):
            return subprocess.run([sys.executable, "-c", "from pixelforge.cli import main; main()", *map(str, args)],
                                  capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                  cwd=cwd, env=env, **kwargs)
        return zygote.run(list(map(str, args)), timeout, cwd)

    run.zygote = zygote  # for tests of the fixture itself (tests/test_cli_harness.py)
    yield run
    zygote.close()
