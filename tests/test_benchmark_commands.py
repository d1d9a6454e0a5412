"""Every benchmark command the README and docs/ show names a real script, subcommand and options.

The figures in docs/ are only worth what the command beside them reproduces, and the ~40 scripts under benchmarks/
are run by hand, so a renamed option or a moved helper would go unnoticed until a reader pastes the command. This
reads the commands from the pages (as tests/test_docs_commands.py does for `pixelforge ...`), asks each script's
own argparse parser what it accepts (caught as the script calls `parse_args`, before any work starts: one process,
a few seconds), and imports the few scripts that read `sys.argv` by hand. Nothing is trained.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_docs_commands import PAGES, PREFIX, SHELL_SEPARATORS, is_placeholder, shell_lines

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(path.stem for path in (ROOT / "benchmarks").glob("*.py") if path.stem != "__init__")
COMMAND = re.compile(PREFIX.pattern + r"(?:nice\s+(?:-n\s*\S+\s+)?)?python3?\s+(?:-m\s+(benchmarks(?:\.\w+)?)|(benchmarks/\w+\.py))(\s.*)?")

# Run in a child process: each script's parser, caught at its `parse_args` call, as {script: {"options": [...],
# "commands": {name: [...]}}}; scripts that never build a parser are imported instead and reported with null.
PARSERS = r"""
import argparse, contextlib, io, json, runpy, sys

class Caught(Exception):
    pass

def catch(parser, *args, **kwargs):
    raise Caught(parser)

def options(parser):
    found, commands = [], {}
    for action in parser._actions:
        found += action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            commands = {name: options(sub)[0] for name, sub in action.choices.items()}
    return found, commands

argparse.ArgumentParser.parse_known_args = catch
report = {}
for name in sys.argv[1:]:
    module = "benchmarks" if name == "__main__" else f"benchmarks.{name}"
    source = open(f"benchmarks/{name}.py").read()
    sys.argv = [module]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            if "argparse" in source:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
                report[name] = {"error": "ran to the end without parsing its arguments"}
            else:
                __import__(module)
                report[name] = None
    except Caught as caught:
        found, commands = options(caught.args[0])
        report[name] = {"options": found, "commands": commands}
    except BaseException as exc:
        report[name] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def parsers() -> dict:
    done = subprocess.run([sys.executable, "-c", PARSERS, *SCRIPTS], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def benchmark_commands(markdown: str) -> list[tuple[str, list[str]]]:
    """(script, argument tokens) for every `python -m benchmarks.X ...` / `python benchmarks/X.py ...` shown."""
    found = []
    for line in shell_lines(markdown):
        line = re.sub(r"(^|\s)#.*$", "", line)
        for part in SHELL_SEPARATORS.split(line):
            match = COMMAND.fullmatch(part.strip())
            if match:
                module, path, rest = match.groups()
                script = Path(path).stem if path else (module.partition(".")[2] or "__main__")
                try:
                    found.append((script, shlex.split(rest or "")))
                except ValueError:  # a span cut mid-quote in prose
                    pass
    return found


def problems_of(script: str, tokens: list[str], parsers: dict) -> list[str]:
    if script not in parsers:
        return [f"benchmarks/{script}.py does not exist"]
    parser = parsers[script]
    if parser is None:  # reads sys.argv by hand: importing it was the check
        return []
    if "error" in parser:
        return [f"benchmarks/{script}.py: {parser['error']}"]
    allowed, commands = set(parser["options"]), parser["commands"]
    positional = [token for token in tokens if not token.startswith("-")]
    if commands and positional and not is_placeholder(positional[0]):
        if positional[0] not in commands:
            return [f"benchmarks/{script}.py has no command {positional[0]!r}"]
        allowed |= set(commands[positional[0]])
    return [f"benchmarks/{script}.py has no option {name}"
            for name in (token.partition("=")[0] for token in tokens if token.startswith("--"))
            if name not in allowed and not is_placeholder(name)]


def documented() -> list[tuple[str, str, list[str]]]:
    return [(page.name, script, tokens) for page in PAGES if page.is_file()
            for script, tokens in benchmark_commands(page.read_text())]


def test_the_pages_show_benchmark_commands_at_all():
    assert len(documented()) >= 40
    assert {"__main__", "tune_search", "compress", "style_images"} <= {script for _, script, _ in documented()}


def test_every_benchmark_script_builds_its_parser_or_imports(parsers):
    broken = {name: parser["error"] for name, parser in parsers.items() if parser and "error" in parser}
    assert not broken, broken
    assert parsers["__main__"]["options"] and "photos" in parsers["compress"]["commands"]


def test_every_documented_benchmark_command_uses_real_scripts_and_options(parsers):
    problems = [f"{page}: {problem}" for page, script, tokens in documented()
                for problem in problems_of(script, tokens, parsers)]
    assert not problems, "\n".join(problems)


def test_a_renamed_benchmark_option_and_a_missing_script_are_caught(parsers):
    (script, tokens), = benchmark_commands("```bash\npython -m benchmarks.tune_search --seedz 3\n```")
    assert problems_of(script, tokens, parsers) == ["benchmarks/tune_search.py has no option --seedz"]
    (script, tokens), = benchmark_commands("Run `python benchmarks/nowhere.py --out x`.")
    assert problems_of(script, tokens, parsers) == ["benchmarks/nowhere.py does not exist"]
    (script, tokens), = benchmark_commands("```bash\npython -m benchmarks.compress fotos ../runs/photos\n```")
    assert problems_of(script, tokens, parsers) == ["benchmarks/compress.py has no command 'fotos'"]
