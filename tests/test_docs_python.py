"""Every ```python block of README.md and docs/*.md runs as written.

The Python API is half of the interface ("every step is a CLI command and a Python function with the same
options"), and a snippet that names a renamed function, keyword or result key is a broken promise no other test
sees. Each page's blocks run in order, each in a fresh namespace, in one temporary working directory per page;
a later block may read what an earlier one wrote (a run folder). The folders the pages' CLI sections write with
`pixelforge data make` (`data/shapes-detect`, ...) are prepared first, smaller than the real ones so that every
block together stays within about a minute: the snippets show the calls, the CLI sections hold the recipes.
(ARCHITECTURE.md's block is run by tests/test_plugin_task.py.)
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

# One page a task, and the pages across tasks whose commands have a Python form: each shows it in a block that runs.
TASK_PAGES = ["classification", "detection", "segmentation", "denoising", "compression", "gan", "style-transfer",
              "captioning", "zero-shot", "few-shot", "continual-learning", "tuning", "explain", "fairness",
              "deployment"]


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


def _write_detect(out: Path, masks: bool) -> None:
    from pixelforge.data.boxes import shapes

    splits = shapes.SPLITS
    shapes.SPLITS = (("train", 8), ("val", 4), ("test", 4))
    try:
        (shapes.write_shapes_instance if masks else shapes.write_shapes_detect)(out, seed=0)
    finally:
        shapes.SPLITS = splits


def _write_segment(out: Path) -> None:
    from pixelforge.data.masks.shapes import write_shapes_segment

    write_shapes_segment(out, seed=0, count=18, size=64)


def _write_captions(out: Path) -> None:
    from pixelforge.data.captions.shapes import write_shapes_captions

    write_shapes_captions(out, seed=3, splits=(("train", 24), ("val", 8), ("test", 12)), extra_train=0)


def _write_shapes(out: Path) -> None:
    from pixelforge.data.builtin import _write_shapes

    _write_shapes(out, seed=0, per_class=20)


def _write_split_digits(out: Path) -> None:
    from pixelforge.data.split_digits import write_split_digits

    write_split_digits(out, tasks=5, seed=0)


# What a page's blocks may read, as `pixelforge data make` writes it there (smaller: the pages' blocks are examples).
DATA = {"data/shapes-detect": lambda out: _write_detect(out, masks=False),
        "data/shapes-instance": lambda out: _write_detect(out, masks=True),
        "data/shapes-seg": _write_segment,
        "data/shapes-captions": _write_captions,
        "data/shapes": _write_shapes,
        "data/split-digits": _write_split_digits}


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("docs-data")


def prepare(code: str, cache: Path, workdir: Path) -> None:
    for name, write in DATA.items():
        if re.search(re.escape(name) + r"\b(?!-)", code) and not (workdir / name).exists():
            made = cache / name
            if not made.exists():
                write(made)
            shutil.copytree(made, workdir / name)


PAGES_WITH_CODE = [page for page in PAGES if python_blocks(page)]


def test_every_task_page_shows_its_python_api_in_a_block():
    missing = [name for name in TASK_PAGES if not python_blocks(ROOT / "docs" / f"{name}.md")]
    assert not missing, f"docs pages without a ```python block: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=[page.relative_to(ROOT).as_posix() for page in PAGES_WITH_CODE])
def test_every_python_block_of_the_page_runs_as_written(page, data_cache, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for number, code in enumerate(python_blocks(page), 1):
        prepare(code, data_cache, tmp_path)
        started = time.perf_counter()
        try:
            exec(compile(code, f"{page.name} block {number}", "exec"), {"__name__": "__main__"})
        except Exception as error:  # the page and block, then the traceback: which snippet broke
            raise AssertionError(f"{page.relative_to(ROOT)}: python block {number} failed: {error!r}") from error
        with capsys.disabled():
            print(f"\n{page.relative_to(ROOT)} block {number}: {time.perf_counter() - started:.1f} s", end="")

