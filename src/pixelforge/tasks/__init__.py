"""The tasks: one folder each (classify, detect, segment, instance), plugged into the engine through the registry.

Importing this package imports the built-in tasks, which registers them (`tasks/registry.py`); that is the only
side effect, and each task's `__init__` keeps its heavy imports inside its methods.
"""

from pixelforge.tasks import (  # noqa: F401  (importing them registers the built-in tasks)
    caption, classify, clip, compress, denoise, detect, gan, instance, segment, style)
