"""B3, data pipeline: decoded + resized + augmented images per second, reading the train split epoch after epoch.

Plain: ImageFolder + PIL with the tutorial's transforms in a 2-worker DataLoader (every epoch decodes every JPEG).
pixelforge: its ImageDataset as `pixelforge train` builds it: preloaded once into a RAM cache of uint8 images at the
decode size (JPEG draft mode), its `light` augmentation on tensors and the batch collation on one thread,
`default_workers()` workers.
Epochs after the first are measured; the first (with pixelforge's preload) is reported beside them.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader

from benchmarks.pairs import FreshProcess, Row, alternate, fill
from benchmarks.plain import plain_datasets
from benchmarks.workload import Workload


def read_epochs(make_loader, epochs: int) -> dict:
    started = time.perf_counter()
    loader = make_loader()
    seconds, images = [], 0
    for _ in range(epochs):
        epoch_start, images = time.perf_counter(), 0
        for x, _ in loader:
            images += len(x)
        seconds.append(time.perf_counter() - epoch_start)
    first = time.perf_counter() - started - sum(seconds[1:])  # includes building the loader (and any preload)
    later = sum(seconds[1:]) if epochs > 1 else seconds[0]
    return {"images_per_s": round(images * max(epochs - 1, 1) / later, 1), "first_epoch_s": round(first, 2),
            "epoch_s": [round(s, 3) for s in seconds]}


def plain_side(work: Workload) -> dict:
    def make_loader():
        dataset = plain_datasets(work.root, work.train_idx, work.val_idx, work.img_size)["train"]
        return DataLoader(dataset, batch_size=work.batch_size, shuffle=True, num_workers=work.workers)

    return read_epochs(make_loader, work.pipeline_epochs)


def pixelforge_side(work: Workload) -> dict:
    from pixelforge.data.dataset import ImageDataset
    from pixelforge.engine.cpu_memory import reuse_freed_memory
    from pixelforge.data.transforms import decode_size, resolve_augment, train_transform
    from pixelforge.engine.threads import single_threaded, single_threaded_collate
    from pixelforge.engine.threads import default_workers
    from pixelforge.models.registry import get_spec

    reuse_freed_memory()  # as `pixelforge train` does before it builds its loaders (process-wide, so set once)
    spec = get_spec("tf_efficientnet_lite0")
    workers = default_workers()

    def make_loader():
        # As engine/train.py builds it for `pixelforge train` (defaults: augment light).
        transform = single_threaded(train_transform(work.img_size, spec.mean, spec.std, resolve_augment("light")))
        dataset = ImageDataset(work.train_samples, {c: i for i, c in enumerate(work.classes)},
                               decode_size(work.img_size, spec.crop_pct), transform)
        dataset.preload()
        generator = torch.Generator().manual_seed(work.seed)
        return DataLoader(dataset, batch_size=work.batch_size, shuffle=True, num_workers=workers,
                          persistent_workers=workers > 0, generator=generator, collate_fn=single_threaded_collate)

    return {**read_epochs(make_loader, work.pipeline_epochs), "workers": workers}


def run(work: Workload, repeats: int, say=print) -> list[Row]:
    say(f"B3 data pipeline: {len(work.train_idx)} train images, {work.pipeline_epochs} epochs (first not measured)")
    runs = alternate(FreshProcess(plain_side, work), lambda: pixelforge_side(work), repeats, say)
    row = Row("B3", f"data pipeline, img/s (decode+resize+augment, epochs 2-{work.pipeline_epochs})", "img/s", True,
              "ImageFolder+PIL, 2 workers", "ImageDataset, RAM cache", goal=2.0)
    fill(row, runs, lambda r: r["images_per_s"])
    plain, ours = runs[-1]["baseline"]["result"], runs[-1]["pixelforge"]["result"]
    row.details = {"plain_first_epoch_s": plain["first_epoch_s"], "pixelforge_first_epoch_s": ours["first_epoch_s"],
                   "pixelforge_workers": ours["workers"]}
    row.note = (f"first epoch: plain {plain['first_epoch_s']:.1f} s, "
                f"pixelforge {ours['first_epoch_s']:.1f} s (with preload)")
    return [row]
