"""The keys every `predict` row has, whatever the task: the one place they are added, for runs and packages alike.

    path    the input file, as found (every row already had it)
    task    the task that predicted it (`classify`, `style`, ...)
    output  the main file the row wrote, as a string path, when it wrote one: the same value as the task's own
            key (style `stylized`, compress `file`, segment `mask`, detect/instance `annotated`; denoise's own key
            is `output`). Rows that wrote nothing (classify, caption, an unreadable file) have no `output`.

Every task keeps its own keys besides (docs/deployment.md, "What every task returns"); these are only added, never
renamed, so code written against one task's keys keeps working.
"""

from __future__ import annotations


def with_common_keys(rows: list[dict], task: str, output_key: str | None = None) -> list[dict]:
    """`rows` with `path` and `task` first and `output` copied from `output_key` where the row wrote a file.

    Example:
        >>> with_common_keys([{"path": "a.png", "stylized": "out/a_stylized.png"}], "style", "stylized")
        [{'path': 'a.png', 'task': 'style', 'stylized': 'out/a_stylized.png', 'output': 'out/a_stylized.png'}]
    """
    return [_with_common_keys(row, task, output_key) for row in rows]


def _with_common_keys(row: dict, task: str, output_key: str | None) -> dict:
    keyed = {"path": row.get("path"), "task": task, **row}
    written = row.get(output_key) if output_key else None
    if written and not row.get("error"):
        keyed.setdefault("output", str(written))
    return keyed
