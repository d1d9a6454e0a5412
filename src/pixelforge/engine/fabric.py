"""Lightning Fabric, imported without the rest of Lightning (issue 20's lever L16).

`import lightning.fabric` first runs the `lightning` package, which imports Lightning's whole Trainer and, through it,
torchmetrics (with scipy.signal, matplotlib and torchvision's detection ops behind it): ~1.5 s of CPU before every
training. pixelforge needs only Fabric, which the `lightning-fabric` package ships as `lightning_fabric` (the same
code). Even that one reads torchmetrics' version at import time, by importing it, for a feature we never use
(`SpikeDetection`); so the import runs with torchmetrics hidden, and a later `import torchmetrics` (the GAN's FID,
image-quality metrics) works as usual. Every Fabric name pixelforge uses comes from here, so one module tree is used.
"""

from __future__ import annotations

import sys


def lightning_fabric():
    """The `lightning_fabric` package (`.Fabric`, `.strategies.DDPStrategy`, `.loggers.TensorBoardLogger`)."""
    if "lightning_fabric" not in sys.modules and "torchmetrics" not in sys.modules:
        sys.modules["torchmetrics"] = None  # makes `import torchmetrics` fail fast inside lightning_utilities' check
        try:
            import lightning_fabric  # noqa: F401
        finally:
            del sys.modules["torchmetrics"]
    import lightning_fabric

    return lightning_fabric


def new_fabric(accelerator: str, devices: int, **options):
    """`Fabric(accelerator=..., devices=..., **options)`, or a PixelforgeError in one line when this machine cannot
    meet the device request (Fabric says it in a paragraph, under a traceback)."""
    package = lightning_fabric()
    # Looked up before the `try`: the except clause's names are evaluated when anything propagates, a Ctrl-C or
    # SIGTERM included, and an import there would replace that interrupt with its own error.
    misconfigured = package.utilities.exceptions.MisconfigurationException
    try:
        return package.Fabric(accelerator=accelerator, devices=devices, **options)
    except (RuntimeError, ValueError, misconfigured) as exc:
        from pixelforge.errors import PixelforgeError

        raise PixelforgeError(device_problem(accelerator, devices, exc)) from None


def device_problem(accelerator: str, devices: int, exc: Exception) -> str:
    """The one line for a device request that Fabric refused."""
    import torch

    asked = f"--accelerator {accelerator} --devices {devices}"
    wants_cuda = accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available())
    if accelerator in ("cuda", "gpu") and not torch.cuda.is_available():
        return (f"{asked}: no CUDA device is available to this process (torch {torch.__version__}); "
                f"use --accelerator auto or cpu")
    if wants_cuda and devices > torch.cuda.device_count():
        return (f"{asked}: this machine has {torch.cuda.device_count()} CUDA device(s); lower --devices, or "
                f"--accelerator cpu for {devices} CPU processes")
    return f"{asked}: {' '.join(str(exc).split())}"


# Lightning logs through these (lightning_utilities' rank_zero_info uses whichever was imported last).
LOGGER_NAMES = ("lightning_fabric", "lightning_fabric.utilities.rank_zero", "lightning.fabric", "lightning.pytorch",
                "lightning.fabric.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero")
