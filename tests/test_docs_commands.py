"""Every `pixelforge ...` command the README and docs/ show names a real subcommand, real options and no extra
arguments.

The pages are how a new user meets the CLI, and options get renamed; this reads every command from the Markdown
(fenced blocks, with `\\` continuations joined, and inline code spans) and checks it against the Typer app itself,
so a renamed option or command fails here instead of in a user's shell. Values are not checked (our options take
plain strings that the config validates) and commands are not run: the long ones train for minutes, and their
placeholders (RUN, IMAGES...) are not files.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_SEPARATORS = re.compile(r"&&|\|\||;|\|")
NOT_SHELL = {"python", "py", "yaml", "yml", "json", "toml", "html", "text", "txt"}  # fenced blocks of other languages
# What may stand before `pixelforge` on a shell line: a prompt, VAR=value settings and the usual wrappers.
PREFIX = re.compile(r"(?:\$|[A-Za-z_][A-Za-z0-9_]*=\S*|env|time|/usr/bin/time|nohup|timeout\s+\S+|\(|\s)*")


def shell_lines(markdown: str) -> list[str]:
    """The shell lines of fenced code blocks (continuations joined, comments cut) and the inline code spans."""
    lines, block, fenced, language = [], [], False, ""
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            if fenced and language not in NOT_SHELL:
                lines += "\n".join(block).replace("\\\n", " ").splitlines()
            fenced, block, language = not fenced, [], line.strip().strip("`").strip().lower()
        elif fenced:
            block.append(line)
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S)
    lines += re.findall(r"`([^`\n]+)`", prose)
    return lines


def pixelforge_commands(markdown: str) -> list[str]:
    commands = []
    for line in shell_lines(markdown):
        line = re.sub(r"(^|\s)#.*$", "", line)  # a shell comment
        for part in SHELL_SEPARATORS.split(line):
            found = re.fullmatch(PREFIX.pattern + r"(pixelforge\s.*)", part.strip())
            if found:
                commands.append(found.group(1).strip())
    return commands


def is_placeholder(token: str) -> bool:
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_.\-]*|.*\.\.\..*|.*[<>\[\]$].*", token))


def problems_of(command: str, app_command) -> list[str]:
    try:
        tokens = shlex.split(command)[1:]
    except ValueError:  # a span cut mid-quote in prose: nothing a user would paste
        return []
    node, path = app_command, ["pixelforge"]
    while tokens and hasattr(node, "commands") and tokens[0] in node.commands:
        node = node.commands[tokens[0]]
        path.append(tokens.pop(0))
    if hasattr(node, "commands"):  # a group: the next word must be one of its commands
        if tokens and not tokens[0].startswith("-") and not is_placeholder(tokens[0]):
            return [f"{' '.join(path)} has no command {tokens[0]!r}"]
        return []
    options = {"--help": None}
    for param in node.params:
        options.update(dict.fromkeys([*param.opts, *param.secondary_opts], param))
    found, positional, depth = [], [], 0  # depth: inside a synopsis's optional part, `[--seed N]`
    expects_value = False
    for token in tokens:
        bare = token.strip("[]")
        optional, depth = depth > 0 or token.startswith("["), depth + token.count("[") - token.count("]")
        name, _, inline_value = bare.partition("=")
        if expects_value:
            expects_value = False
        elif name.startswith("--") and not is_placeholder(name):
            if name not in options:
                found.append(f"{' '.join(path)} has no option {name}")
            elif options[name] is not None and not (options[name].is_flag or options[name].count or inline_value):
                expects_value = True
        elif not bare.startswith("-") and not optional and "..." not in bare:
            positional.append(bare)
    arguments = [param for param in node.params if param.param_type_name == "argument"]
    if not found and not any(param.nargs == -1 for param in arguments):
        if len(positional) > sum(param.nargs for param in arguments):
            found.append(f"{' '.join(path)} takes {sum(param.nargs for param in arguments)} argument(s), "
                         f"not {len(positional)}: {positional}")
    return found


def documented_commands() -> list[tuple[str, str]]:
    return [(page.name, command) for page in PAGES if page.is_file()
            for command in pixelforge_commands(page.read_text())]


def test_the_pages_show_the_cli_at_all():
    commands = documented_commands()
    pages = {page for page, _ in commands}
    assert len(commands) > 100 and {"README.md", "classification.md", "style-transfer.md", "tuning.md"} <= pages


def test_every_documented_command_uses_real_commands_and_options():
    import typer

    from pixelforge.cli import app

    app_command = typer.main.get_command(app)
    wrong = [f"{page}: `{command}`: {problem}" for page, command in documented_commands()
             for problem in problems_of(command, app_command)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("command, expected", [
    ("pixelforge train --data d --epoch 3", "pixelforge train has no option --epoch"),
    ("pixelforge tune --config c --space s --sampler=tpe --trial 4", "pixelforge tune has no option --trial"),
    ("pixelforge runs comapre a b", "pixelforge runs has no command 'comapre'"),
    ("pixelforge data chek DIR", "pixelforge data has no command 'chek'"),
    ("pixelforge export RUN PACKAGE", "pixelforge export takes 1 argument(s), not 2"),
    ("pixelforge evaluate RUN --json --dat x", "pixelforge evaluate has no option --dat"),
    ("pixelforge export RUN --out P [--format onnx] [--int7]", "pixelforge export has no option --int7"),
])
def test_a_renamed_option_and_a_misspelt_command_are_caught(command, expected):
    import typer

    from pixelforge.cli import app

    found = problems_of(command, typer.main.get_command(app))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_commands_are_read_from_blocks_continuations_and_inline_code():
    page = ("Run `pixelforge evaluate RUN --json` first.\n\n```bash\n# pixelforge comment only\n"
            "pixelforge train --data d \\\n    --epochs 3  # why\ncd x && pixelforge export RUN --out p\n```\n")
    assert pixelforge_commands(page) == ["pixelforge train --data d      --epochs 3", "pixelforge export RUN --out p",
                                         "pixelforge evaluate RUN --json"]


def fenced_shell_commands(markdown: str) -> list[str]:
    """The commands of a page's fenced shell blocks in page order (continuations joined, comments cut)."""
    commands, block, fenced, language = [], [], False, ""
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            if fenced and language not in NOT_SHELL:
                for joined in "\n".join(block).replace("\\\n", " ").splitlines():
                    joined = re.sub(r"(^|\s)#.*$", "", joined)
                    commands += [part.strip() for part in SHELL_SEPARATORS.split(joined) if part.strip()]
            fenced, block, language = not fenced, [], line.strip().strip("`").strip().lower()
        elif fenced:
            block.append(line)
    return commands


def uses_before_made(markdown: str) -> list[str]:
    """Paths a page's command reads before the page's first command that makes them.

    Made: every `--out` value, and a `python` command's (a benchmark's) bare path arguments and `--save`; read: the
    paths a `pixelforge` command is given, other than its `--out` and the shared data. Only paths the page makes
    somewhere count, so data a user brings (clip.mp4) is not asked for.
    """
    steps = []
    for command in fenced_shell_commands(markdown):
        try:
            tokens = shlex.split(command)
        except ValueError:
            continue
        made = {tokens[i + 1] for i, token in enumerate(tokens[:-1]) if token == "--out"}
        reads = set()
        if "pixelforge" in tokens:
            rest = tokens[tokens.index("pixelforge") + 1:]
            reads = {token for token in rest if "/" in token and not token.startswith("-")}
            reads = {path for path in reads - made if not path.startswith("../shared/")}  # the user's own data
        elif any(token.startswith("python") for token in tokens):  # a benchmark: its bare arguments and --out
            made |= {token for before, token in zip(["", *tokens], tokens) if "/" in token
                     and not token.startswith("-") and not (before.startswith("--") and before != "--save")}
        steps.append((command, {path.rstrip("/") for path in made}, {path.rstrip("/") for path in reads}))

    def within(path: str, folder: str) -> bool:
        return path == folder or path.startswith(folder + "/")

    first_made = {}
    for index, (_, made, _) in enumerate(steps):
        for path in made:
            first_made.setdefault(path, index)
    found = []
    for index, (command, _, reads) in enumerate(steps):
        for path in reads:
            makers = [at for folder, at in first_made.items() if within(path, folder)]
            if makers and min(makers) > index:
                found.append(f"`{command}` reads {path} before `{steps[min(makers)][0]}` makes it")
    return found


def test_every_page_makes_what_a_command_reads_before_that_command():
    wrong = [f"{page.name}: {problem}" for page in PAGES if page.is_file()
             for problem in uses_before_made(page.read_text())]
    assert not wrong, "\n".join(wrong)


def test_a_path_read_before_the_command_that_makes_it_is_caught():
    page = ("```bash\npixelforge compress RUN ../runs/photos/a.png --out a.pfc\n```\n\n"
            "```bash\npython -m benchmarks.compress photos ../runs/photos\n"
            "pixelforge decompress ../pkg a.pfc --out a.png\npixelforge export RUN --out ../pkg\n```\n")
    found = uses_before_made(page)
    assert len(found) == 2 and "../runs/photos/a.png" in found[0] and "../pkg" in found[1], found
