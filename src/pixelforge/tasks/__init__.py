"""The tasks: one folder each (classify, detect, segment, instance), plugged into the engine through the registry.

Importing this package imports the built-in tasks, which registers them (`tasks/registry.py`); that is the only
side effect, and each task's `__init__` keeps its heavy imports inside its methods. Tasks of the user's own modules
are imported after them, from the PIXELFORGE_PLUGINS variable (registry.import_plugins; ARCHITECTURE.md).
"""

import os

from pixelforge.tasks import (  # noqa: F401  (importing them registers the built-in tasks)
    caption, classify, clip, compress, denoise, detect, gan, instance, segment, style)
from pixelforge.tasks.registry import PLUGINS_VARIABLE, import_plugins  # noqa: E402

import_plugins(os.environ.get(PLUGINS_VARIABLE, ""))
