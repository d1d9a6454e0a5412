"""DDP in spawned processes that import only what they train with (issue 20).

A process started with `spawn` is a bare interpreter that imports whatever unpickling its work names, in that order.
Fabric's launcher came first, so each process imported `lightning_fabric` plainly, and with it torchmetrics, which
lightning_utilities imports only to read its version (scipy.signal, matplotlib and torchmetrics' whole functional API
behind it): ~1.5 s of CPU in every process of every `--devices 2` run, for a Fabric feature pixelforge never uses
(engine/fabric.py imports Fabric without it in the launching process). Here the launcher's class lives in this module,
so unpickling it imports this module first, which imports Fabric the light way; the launcher itself is Lightning's.
A later `import torchmetrics` in the process (the GAN's FID) works as usual.
"""

from __future__ import annotations

from pixelforge.engine.fabric import lightning_fabric

# Only imported where a DDP run is launched, or unpickled in a process it spawned: the classes need Fabric's.
_fabric = lightning_fabric()


class SpawnLauncher(_fabric.strategies.launchers.multiprocessing._MultiProcessingLauncher):
    """Lightning's launcher for spawned processes, unchanged but for the module its class is found in."""


class SpawnDDPStrategy(_fabric.strategies.DDPStrategy):
    """Lightning's `DDPStrategy(start_method="spawn")`, launching through `SpawnLauncher`."""

    def __init__(self, **options):
        super().__init__(start_method="spawn", **options)

    def _configure_launcher(self) -> None:
        self._launcher = SpawnLauncher(self, start_method="spawn")
