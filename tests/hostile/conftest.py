"""The hostile-input suite: bad or odd input on purpose, each with its expected outcome (docs/reliability.md).

`pixelforge` commands run in-process through `cli.main` (a subprocess per case would cost seconds each), with
its exit code and both output streams captured.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        """The one error line a user mistake must produce (and nothing more on stderr, no traceback)."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one error line, got:\n{self.err}"
        return lines[0]


@pytest.fixture
def pixelforge_cli(capsys, monkeypatch):
    """run("data", "check", PATH) -> Outcome(exit code, stdout, stderr), in this process."""
    from pixelforge.cli import main

    def run(*args) -> Outcome:
        monkeypatch.setattr(sys, "argv", ["pixelforge", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run
