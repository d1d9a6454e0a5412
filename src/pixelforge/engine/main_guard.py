"""Refuse, in one line, a multi-process training started from a script's top level without the `__main__` guard.

DDP here starts its processes with the `spawn` method, which imports the script again in each new process. A
`pixelforge.train(..., devices=2)` at the script's top level then runs again in every child and starts processes of
its own: multiprocessing's paragraph about "the bootstrapping phase" under a traceback, a stray run folder, and a
parent that waits for ever. The call is found in the script's source before any process or folder exists.
"""

from __future__ import annotations

import ast
import sys

from pixelforge.errors import PixelforgeError


def check_main_guard() -> None:
    """Raise PixelforgeError when the running script calls us from top-level code outside `if __name__ == "__main__":`."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path or not str(path).endswith(".py"):  # python -c, a notebook, the interactive prompt
        return
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:  # not reached from the script's top level (a thread, a callback after it finished)
        return
    try:
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return
    if not any(node.lineno <= frame.f_lineno <= node.end_lineno for node in _guarded_blocks(tree)):
        raise PixelforgeError(f"{path}, line {frame.f_lineno}: training on several processes imports this script "
                              f"again in each one; put the call under `if __name__ == \"__main__\":`")


def _guarded_blocks(tree: ast.Module) -> list:
    """The statements run only as the main script: the bodies of `if __name__ == "__main__":` (and the `else` of
    `if __name__ != "__main__":`) at the top level."""
    blocks = []
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1:
            sides = [node.test.left, *node.test.comparators]
            names = {s.id for s in sides if isinstance(s, ast.Name)}
            texts = {s.value for s in sides if isinstance(s, ast.Constant)}
            if names == {"__name__"} and texts == {"__main__"}:
                body = node.body if isinstance(node.test.ops[0], ast.Eq) else node.orelse
                blocks.extend(body)
    return blocks
