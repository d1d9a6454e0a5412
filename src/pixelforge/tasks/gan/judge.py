"""The classifier that judges conditional samples: a pixelforge classification run (`--classifier RUN`), or, when
none is given, a small CNN trained once on the GAN run's own real training images and cached in RUN/judge/.

The judge is trained on real images only and never sees generated ones; its accuracy on held-out real images (the
test split, else val) is reported beside the conditional accuracy, which cannot meaningfully exceed it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from pixelforge.errors import PixelforgeError

log = logging.getLogger("pixelforge")
JUDGE_EPOCHS = 12


class Judge:
    """Classify [-1, 1] images of the GAN's size; `describe` names where it came from."""

    def __init__(self, model: nn.Module, prepare, classes: list[str], describe: str, real_accuracy: float | None):
        self.model, self.prepare, self.classes = model.eval(), prepare, classes
        self.describe, self.real_accuracy = describe, real_accuracy

    @torch.inference_mode()
    def predict(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        return torch.cat([self.model(self.prepare(images[i:i + batch_size])).argmax(1)
                          for i in range(0, len(images), batch_size)])


def small_cnn(channels: int, num_classes: int) -> nn.Module:
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(channels, 32), *block(32, 64), *block(64, 128), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Dropout(0.2), nn.Linear(128, num_classes))


def own_judge(run, source, progress=None) -> Judge:
    """The cached judge of `run` (RUN/judge/classifier.pt), trained on its real training images when absent."""
    from pixelforge.runs.folder import atomic_write_bytes
    from pixelforge.tasks.gan.data import decode, training_samples

    cfg, path = run.config, run.run_dir / "judge" / "classifier.pt"
    with torch.random.fork_rng(devices=[]):  # the same initial weights whoever asks (training, below, likewise)
        torch.manual_seed(0)
        model = small_cnn(run.channels, len(run.classes))
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        return Judge(model, lambda x: x, run.classes, f"small CNN trained on the real training images ({path})",
                     saved["real_accuracy"])
    log.info("no --classifier: training a small CNN on the run's real training images once (cached in %s)", path)
    train = decode(training_samples(source), run.classes, cfg.img_size, run.channels)
    held = source.split("test") or source.split("val") if source.has_splits else []
    # Seeded for a judge that is the same whoever asks, in a fork: `evaluate` called from a user's script must
    # not find torch's global generator reset to 0 afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        steps = JUDGE_EPOCHS * ((len(train) + 63) // 64)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=steps)
        for epoch in range(JUDGE_EPOCHS):
            model.train()
            for idx in torch.randperm(len(train)).split(64):
                x = train.images[idx]
                # small translations: generated digits are not centred exactly
                shift = torch.randint(-2, 3, (2,)).tolist()
                x = torch.roll(x, shifts=shift, dims=(2, 3))
                loss = F.cross_entropy(model(x), train.labels[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
    judge = Judge(model, lambda x: x, run.classes, "", None)
    accuracy = None
    if held:
        real = decode(held, run.classes, cfg.img_size, run.channels)
        accuracy = float((judge.predict(real.images) == real.labels).float().mean())
    atomic_write_bytes(path, lambda f: torch.save({"model": model.state_dict(), "real_accuracy": accuracy}, f))
    judge.describe = f"small CNN trained on the real training images ({path})"
    judge.real_accuracy = accuracy
    return judge


def run_judge(classifier: str | Path, gan_classes: list[str]) -> Judge:
    """A pixelforge classification run as the judge; its classes must be the GAN's."""
    from pixelforge.models.classifier import build_classifier
    from pixelforge.runs import folder as rd
    from pixelforge.tasks.config import load_config

    run = rd.require_run(classifier)
    cfg = load_config(run / "config.yaml")
    # The task first: another task's run has no classes (or other ones), and "classes [] differ" hid the mistake.
    if not hasattr(cfg, "dropout"):  # only classification's config has its head's dropout
        raise PixelforgeError(f"{run}: not a classification run (it is a {cfg.task} run); --classifier needs a "
                              f"classification run trained on the GAN's classes")
    classes = rd.read_json(run / "classes.json")
    if classes != gan_classes:
        raise PixelforgeError(f"{run}: --classifier's classes {classes} differ from the GAN's {gan_classes}")
    model = build_classifier(cfg.model, len(classes), weights="none", dropout=cfg.dropout)
    path = run / "checkpoints" / "best.ckpt"
    model.load_state_dict(rd.load_checkpoint(path)["model"])
    mean, std = torch.tensor(model.spec.mean).view(1, 3, 1, 1), torch.tensor(model.spec.std).view(1, 3, 1, 1)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        # The run's evaluation preprocessing for a square image: resize to img_size, [0, 1], its mean/std.
        x = (x.clamp(-1, 1) + 1) / 2
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = F.interpolate(x, size=(cfg.img_size, cfg.img_size), mode="bilinear", antialias=True, align_corners=False)
        return (x - mean) / std

    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    return Judge(model, prepare, classes, f"classification run {run}", summary.get("best_val_accuracy"))
