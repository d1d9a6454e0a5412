"""A spawned DDP process imports Fabric the light way: the first module its work names is engine/spawn.py, whose
import hides torchmetrics from lightning_utilities' version check (~1.5 s of CPU in every process otherwise)."""

from __future__ import annotations

import pickletools
from multiprocessing.reduction import ForkingPickler

from pixelforge.engine.fabric import new_fabric
from pixelforge.engine.fit import FitConfig, _strategy


def _modules_in_unpickling_order(blob: bytes) -> list[str]:
    """The modules an unpickler imports for `blob`, in order (protocol 4+ names them as strings before STACK_GLOBAL)."""
    modules, strings = [], []
    for op, arg, _ in pickletools.genops(blob):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            modules.append(strings[-2])
        elif op.name == "GLOBAL":
            modules.append(arg.split(" ")[0])
    return modules


def test_a_spawned_process_meets_pixelforge_s_launcher_before_any_lightning_module():
    fabric = new_fabric("cpu", 2, strategy=_strategy(FitConfig(devices=2, accelerator="cpu")))
    launcher = fabric.strategy.launcher
    # What torch's spawn sends each process ahead of the work itself: `_wrap(launcher._wrapping_function, ...)`.
    modules = _modules_in_unpickling_order(bytes(ForkingPickler.dumps(launcher._wrapping_function)))
    first_lightning = next(i for i, name in enumerate(modules) if name.startswith("lightning"))
    assert "pixelforge.engine.spawn" in modules[:first_lightning], modules
    assert type(launcher).__module__ == "pixelforge.engine.spawn"
