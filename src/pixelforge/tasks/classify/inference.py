"""Loading a trained run's model and running it over images, in batches, with the run's own preprocessing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from pixelforge.config import RunConfig
from pixelforge.engine.devices import on_inference_device
from pixelforge.tasks.common.run import read_run
from pixelforge.data.dataset import ImageDataset
from pixelforge.data.sources import Sample
from pixelforge.data.transforms import decode_size, eval_transform
from pixelforge.runs import folder as rd
from pixelforge.models.classifier import Classifier, restore_classifier


@dataclass
class LoadedRun:
    run_dir: Path
    config: RunConfig
    classes: list[str]
    model: Classifier
    temperature: float = 1.0  # calibration.py: run_inference divides the logits by it (scores, not predictions)

    @property
    def short_side(self) -> int:
        return decode_size(self.config.img_size, self.model.spec.crop_pct)

    @property
    def transform(self):
        spec = self.model.spec
        return eval_transform(self.config.img_size, spec.mean, spec.std)


CALIBRATION_FILE = "calibration.json"  # written by calibration.py after training


def read_temperature(run: Path) -> float:
    """The run's fitted temperature (calibration.py), 1.0 when it was not calibrated."""
    path = Path(run) / CALIBRATION_FILE
    return float(rd.read_json(path).get("temperature", 1.0)) if path.exists() else 1.0


def load_run(run_dir: str | Path, checkpoint: str = "best.ckpt", temperature: float | None = None) -> LoadedRun:
    """Rebuild the run's model from its config and load `checkpoints/<checkpoint>` (no network needed).

    `temperature`: None for the run's fitted one (RUN/calibration.json, 1.0 without it), or a value to use."""
    # a detector's run handed to classify's functions is named (was "'DetectConfig' object has no attribute ...")
    run, cfg, classes, state = read_run(run_dir, "classify", checkpoint)
    model = restore_classifier(cfg.model, len(classes), cfg.dropout, state["model"])
    # channels_last here, outside inference mode: converted inside it, the weights would become inference
    # tensors that autograd (Grad-CAM, saliency) refuses to use.
    model = model.to(memory_format=torch.channels_last).eval()
    return LoadedRun(run, cfg, classes, model, read_temperature(run) if temperature is None else temperature)


@dataclass
class CachedFeatures:
    """Backbone features a training run has just computed for these images (the linear path's validation split).

    Calibration and the report right after training score exactly these images with the best checkpoint's head
    instead of running the frozen backbone over them a second time. The features come from the path that trained
    the head (ONNX Runtime, checked against eager to ~1e-5; features.py), so the logits equal the eager model's to
    that tolerance (tests/test_report_reuse.py).
    """

    paths: list[Path]
    features: torch.Tensor  # [n, dim]

    def logits(self, model: torch.nn.Module, samples: list[Sample]) -> torch.Tensor | None:
        """The head's logits for `samples`, or None unless they are exactly the cached images in the same order."""
        if [s.path for s in samples] != self.paths:
            return None
        return model.head(self.features).float()


def run_inference(loaded: LoadedRun, samples: list[Sample], batch_size: int = 64, progress=None,
                  calibrated: bool = True, cached: CachedFeatures | None = None, device=None):
    """Logits for `samples`, divided by the run's temperature unless `calibrated` is False (the model's own
    outputs, as an exported package computes them); unreadable files are dropped. `cached`: features of these
    same images from the training that just ended (used only when the samples match them exactly). `device`: where
    the model runs (default `engine.devices.inference_device()`; an export's parity check asks for the CPU, the package's device).

    Returns (logits, kept samples, unreadable messages), the logits on the CPU."""
    with torch.inference_mode():
        reused = cached.logits(loaded.model.eval(), samples) if cached is not None else None
    if reused is not None:
        if calibrated and loaded.temperature != 1.0:
            reused = reused / loaded.temperature
        return reused, list(samples), []
    class_to_idx = {c: i for i, c in enumerate(loaded.classes)}
    lookup = {**class_to_idx, **{s.label: -1 for s in samples if s.label not in class_to_idx}}
    dataset = ImageDataset(samples, lookup, loaded.short_side, loaded.transform)
    unreadable = dataset.preload(progress=progress)
    model = loaded.model
    with on_inference_device(model, device) as device, torch.inference_mode():
        chunks = [model(x.to(device).contiguous(memory_format=torch.channels_last)).float().cpu()
                  for x, _ in DataLoader(dataset, batch_size=batch_size, pin_memory=device.type == "cuda")]
    logits = torch.cat(chunks) if chunks else torch.zeros(0, len(loaded.classes))
    if calibrated and loaded.temperature != 1.0:
        logits = logits / loaded.temperature
    return logits, dataset.samples, unreadable
