"""The README's and docs/' links lead somewhere, and an option the prose names by itself (`--max-files`) exists.

tests/test_docs_commands.py checks whole `pixelforge ...` commands; a bare option in a sentence escaped it:
docs/reliability.md named `--max-files`, a server limit no command took. Here every such option must belong to
some pixelforge command or to a benchmark script (their argparse flags, read from the source). Links are relative
Markdown links: the file must exist and a `#anchor` must be one of its headings (GitHub's slugs).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]
OTHER_TOOLS = {"--durations"}  # pytest's, named where the docs time the test suite


def prose(page: Path) -> str:
    return re.sub(r"```.*?```", "", page.read_text(), flags=re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+\s+(.*)$", prose(page), flags=re.M)}


def broken_links(page: Path) -> list[str]:
    wrong = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(page)):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            wrong.append(f"{page.name}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            wrong.append(f"{page.name}: {target}: no such heading in {dest.name}")
    return wrong


def test_every_relative_link_leads_to_a_file_and_heading():
    links = sum(len(re.findall(r"\]\((?![a-z]+:)[^)\s]+\)", prose(page))) for page in PAGES)
    wrong = [problem for page in PAGES for problem in broken_links(page)]
    assert links > 50 and not wrong, "\n".join(wrong)


def test_a_heading_slug_is_github_s():
    assert slug("Semantic segmentation (U-Net, FPN, DeepLabV3)") == "semantic-segmentation-u-net-fpn-deeplabv3"
    assert slug("Runtime: predict without `torch`") == "runtime-predict-without-torch"


def known_options() -> set[str]:
    import typer

    from pixelforge.cli import app

    options, nodes = set(OTHER_TOOLS), [typer.main.get_command(app)]
    while nodes:
        node = nodes.pop()
        nodes += getattr(node, "commands", {}).values()
        for param in getattr(node, "params", []):
            options.update([*param.opts, *param.secondary_opts])
    for script in (ROOT / "benchmarks").rglob("*.py"):
        options.update(re.findall(r"[\"'](--[a-z][a-z0-9-]*)[\"']", script.read_text()))
    return options


def test_every_option_named_in_prose_exists():
    known = known_options()
    wrong = [f"{page.name}: `{span}`: {flag}" for page in PAGES
             for span in re.findall(r"`(--[^`]+)`", prose(page))
             for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*[a-z0-9])", span) if flag not in known]
    assert not wrong, "\n".join(wrong)


def test_the_readme_counts_the_hostile_suite_as_it_is():
    """The README's reliability row said 132 tests when the suite had 134: both its counts are checked, the tests
    against pytest's collection, the cases against docs/reliability.md's table."""
    import subprocess
    import sys

    claimed = re.search(r"(\d+) hostile-input tests and (\d+) documented cases", (ROOT / "README.md").read_text())
    assert claimed, "README's reliability row no longer gives the counts this test reads"
    table = (ROOT / "docs" / "reliability.md").read_text().split("## The cases and their outcomes", 1)[1]
    first = re.search(r"^(\|.*\n)+", table, flags=re.M)  # the cases' table; the keys' table follows it
    rows = first[0].splitlines()[2:]  # past its header and rule
    listed = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "tests/hostile"], capture_output=True, text=True, cwd=ROOT)
    collected = re.search(r"(\d+) tests? collected", listed.stdout)
    assert collected, listed.stdout[-500:]
    assert (int(claimed[1]), int(claimed[2])) == (int(collected[1]), len(rows))
