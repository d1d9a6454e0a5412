"""What the benchmarks run on: the data folder, its seeded split, the resolution, and how much of it each case uses.

Both sides of every pair see the same images: the 20% validation split is pixelforge's default one (seeded,
stratified, duplicates kept together), handed to the plain loop as ImageFolder indices.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pixelforge.data.images import list_images
from pixelforge.data.sources import resolve_data
from pixelforge.data.splits import make_splits

HYMENOPTERA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hymenoptera" / "train"


@dataclass
class Workload:
    name: str
    root: Path  # an ImageFolder root: one subfolder per class
    img_size: int = 224
    batch_size: int = 32
    workers: int = 2  # the plain loop's DataLoader workers
    plain_epochs: int = 3  # B1: the plain loop's budget; its best val accuracy over these epochs is its target
    target: float = 0.95  # B1: the accuracy pixelforge must reach
    pixelforge_options: dict = field(default_factory=dict)  # B1: on top of pixelforge.train's defaults
    throughput_images: int = 128  # B2: training images per epoch
    throughput_epochs: int = 2  # B2: the last epoch is measured (the first warms up oneDNN and the caches)
    compile_full: bool = False  # B2: add --compile (measured no faster than the default bf16 path: L8)
    compile_levers: bool = True  # L7, L8: each compiles Lite0 (~1 min on 2 cores); the smoke run skips them
    pipeline_epochs: int = 3  # B3: epochs read; all but the first are measured
    lever_images: int = 128  # L1-L3: images per measurement
    lever_batch: int = 32  # L4-L5: training batch size
    lever_steps: int = 4  # L4-L8: timed training steps (after one warm-up step)
    repeats: int = 1
    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pixelforge-bench-")))
    seed: int = 0

    def __post_init__(self) -> None:
        from torchvision.datasets import ImageFolder

        source = make_splits(resolve_data(str(self.root)), 0.2, 0.0, self.seed)
        split_of = {str(s.path.resolve()): s.split for s in source.samples}
        folder = ImageFolder(str(self.root))
        self.classes = folder.classes
        splits = [split_of.get(str(Path(path).resolve())) for path, _ in folder.samples]
        # ImageFolder skips files torchvision cannot open by extension (hymenoptera's one .gif): pixelforge keeps it.
        self.train_idx = [i for i, split in enumerate(splits) if split == "train"]
        self.val_idx = [i for i, split in enumerate(splits) if split == "val"]
        self.samples = folder.samples
        self.train_samples = source.split("train")
        self.val_samples = source.split("val")

    def throughput_subset(self) -> list[int]:
        """B2's training images: a seeded sample of the train split (both sides train on exactly these)."""
        order = list(self.train_idx)
        random.Random(self.seed).shuffle(order)
        return sorted(order[: self.throughput_images])

    def throughput_csv(self) -> Path:
        """B2 for pixelforge: the same training images, and a small validation split so epochs stay short."""
        path = self.scratch / "throughput.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "split"])
            for index in self.throughput_subset():
                writer.writerow([Path(self.samples[index][0]).resolve(), self.classes[self.samples[index][1]], "train"])
            for index in self.val_idx[: max(len(self.classes) * 2, 8)]:
                writer.writerow([Path(self.samples[index][0]).resolve(), self.classes[self.samples[index][1]], "val"])
        return path

    def cleanup(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def full_workload(data: Path | None = None) -> Workload | None:
    """Hymenoptera (ants vs bees photos) at 224 px, or None when the folder is absent."""
    root = Path(data) if data else HYMENOPTERA
    if not root.is_dir():
        return None
    return Workload("hymenoptera", root)


def smoke_workload(per_class: int = 4) -> Workload:
    """A few built-in `shapes` images at 32 px: every code path in seconds, the numbers mean nothing."""
    from pixelforge.data.builtin import materialize

    scratch = Path(tempfile.mkdtemp(prefix="pixelforge-bench-"))
    shapes = materialize("shapes") / "train"
    root = scratch / "shapes"
    for class_dir in sorted(p for p in shapes.iterdir() if p.is_dir()):
        (root / class_dir.name).mkdir(parents=True)
        for image in list_images(class_dir)[:per_class]:
            os.symlink(image.resolve(), root / class_dir.name / image.name)
    return Workload("shapes (smoke)", root, img_size=32, batch_size=8, plain_epochs=1, target=0.5,
                    pixelforge_options={"img_size": 32, "epochs": 3, "batch_size": 8}, throughput_images=8,
                    throughput_epochs=1, compile_levers=False, pipeline_epochs=2, lever_images=8, lever_batch=4, lever_steps=1,
                    scratch=scratch)
