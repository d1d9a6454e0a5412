from __future__ import annotations

import pytest


@pytest.fixture
def toy_task():
    """The toy task registered for one test, and unregistered after it (other tests see the built-in tasks only)."""
    from pixelforge.tasks.registry import TASKS, unregister_task
    from tests.tune.toy import register

    was_there = "toy-brightness" in TASKS
    register()
    yield
    if not was_there:
        unregister_task("toy-brightness")
