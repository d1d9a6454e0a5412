"""The skeleton of every run's report.html: a title, headline numbers and training curves on top; skipped images
and the run's configuration at the bottom. Each task fills the middle with its own tables and figures.

One static page with relative links and no scripts, so a run folder can be zipped, moved or served as it is.

Example:
    >>> from pathlib import Path; import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> write_page(run, page_start(run, "A test.", [("accuracy", "0.9")], None), skipped=[]).name
    'report.html'
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.kpi{display:inline-block;margin:0 2em 1em 0}.kpi b{font-size:1.6em;display:block}"""


def page_start(run: Path, intro: str, kpis: list[tuple[str, str]], curves: Path | None) -> list[str]:
    """The top every task's report shares: title, one intro paragraph (HTML), headline numbers, training curves."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>pixelforge report: {html.escape(run.name)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(run.name)}</h1>",
        f"<p>{intro}</p>",
        "".join(f"<div class='kpi'>{html.escape(k)}<b>{v}</b></div>" for k, v in kpis),
    ]
    if curves:
        parts.append(f"<h2>Training curves</h2><img src='{link(run, curves)}' alt='curves'>")
    return parts


def link(run: Path, path) -> str:
    """A figure's address relative to the run folder, so the page still works when the folder moves."""
    return html.escape(Path(path).resolve().relative_to(run.resolve()).as_posix())


def write_page(run: Path, parts: list[str], skipped: list[str] = ()) -> Path:
    """End the page (skipped images, the run's configuration) and write RUN/report.html.

    The skipped images are the ones training left out (RUN/summary.json's `unreadable_images`) and `skipped`, the
    report's own evaluation's, each once: a corrupt training photo is named on every task's page, not only in
    summary.json. The page is written beside the old one and renamed over it, so an interrupted report never
    replaces a good one with half a page.
    """
    skipped = list(dict.fromkeys([*_trained_skipped(run), *skipped]))
    if skipped:
        items = "".join(f"<li>{html.escape(e)}</li>" for e in skipped)
        parts = parts + [f"<h2>Skipped images</h2><ul>{items}</ul>"]
    config = (run / "config.yaml").read_text() if (run / "config.yaml").exists() else ""
    parts = parts + [f"<h2>Configuration</h2><pre>{html.escape(config)}</pre></body></html>"]
    path = run / "report.html"
    partial = run / f".report.html.{os.getpid()}.tmp"
    try:
        partial.write_bytes("\n".join(parts).encode())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _trained_skipped(run: Path) -> list[str]:
    try:
        return json.loads((run / "summary.json").read_text()).get("unreadable_images") or []
    except (OSError, ValueError):  # no summary yet (a report of a stopped run), or one being rewritten
        return []
