"""Which pixelforge wrote a run folder or a package, and refusing, in one line, what a newer one wrote.

Run folders and packages outlive the pixelforge that wrote them. Each records its writer's version and the number
of its file format: config.yaml and every checkpoint hold `pixelforge_version` and `run_format`, a package's
package.json `pixelforge_version` and `package_format`. A format number rises only when an older pixelforge would
misread the files; a missing number means "written before formats were recorded" (format 0), which is still read.
Something written in a newer format than this code reads is one line naming its writer and the upgrade, instead of
a KeyError or a pydantic traceback somewhere deep in a task.
"""

from __future__ import annotations

from pathlib import Path

from pixelforge import __version__
from pixelforge.errors import PixelforgeError

RUN_FORMAT = 1  # config.yaml and checkpoints/*.ckpt
PACKAGE_FORMAT = 1  # package.json and the files it names
# The keys the stamps add to config.yaml: the writer's, not settings of the run (a config file may hold them).
RUN_STAMP_KEYS = ("pixelforge_version", "run_format")


def run_stamp() -> dict:
    """What config.yaml and each checkpoint record about the pixelforge that wrote them."""
    return {"pixelforge_version": __version__, "run_format": RUN_FORMAT}


def package_stamp() -> dict:
    """What package.json records about the pixelforge that wrote it."""
    return {"pixelforge_version": __version__, "package_format": PACKAGE_FORMAT}


def check_format(path: str | Path, recorded: dict, kind: str) -> None:
    """Refuse `recorded` (a config, checkpoint or manifest dict) when its `<kind>_format` is newer than this code
    reads; `kind`: "run" or "package". Missing or older: nothing to say."""
    supported = {"run": RUN_FORMAT, "package": PACKAGE_FORMAT}[kind]
    written = recorded.get(f"{kind}_format", 0)
    if not isinstance(written, int) or isinstance(written, bool):
        raise PixelforgeError(f"{path}: {kind}_format {written!r} is not a format number; it was edited by hand, "
                              f"write it again with `pixelforge {'train' if kind == 'run' else 'export'}`")
    if written > supported:
        by = recorded.get("pixelforge_version") or "a newer version"
        raise PixelforgeError(f"{path} was written by pixelforge {by} ({kind} format {written}); this pixelforge "
                              f"({__version__}) reads {kind} formats up to {supported}: upgrade with "
                              f"pip install -U pixelforge")


def written_by(recorded: dict) -> str:
    """"pixelforge 0.1.0" for a stamped file, else "a pixelforge from before versions were recorded"."""
    version = recorded.get("pixelforge_version")
    return f"pixelforge {version}" if version else "a pixelforge from before versions were recorded"
