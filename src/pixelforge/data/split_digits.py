"""`split-digits`: scikit-learn's handwritten digits as a class-incremental benchmark, one folder a task.

    DIR/task1/{train,val,test}/{0,1}/*.png   DIR/task2/.../{2,3}   ...   (5 tasks of 2 classes by default)

The digits' own split (data/builtin.py: stratified 70/15/15, seeded) and pixels (32 px), so a task's folder
trains like any class-folder dataset; `pixelforge train --continue-from` walks the tasks in order (Split-MNIST's
protocol, Zenke et al. 2017 / van de Ven & Tolias 2019, on the small digits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pixelforge.errors import PixelforgeError
from pixelforge.output_names import staged_folder


def write_split_digits(out: Path, tasks: int = 5, seed: int = 0) -> list[Path]:
    """Write the task folders under `out` (atomically: all or none); returns them, first task first.

    Example:
        >>> write_split_digits(Path("split"), tasks=5)  # doctest: +SKIP
        [PosixPath('split/task1'), ..., PosixPath('split/task5')]
    """
    from sklearn.datasets import load_digits

    from pixelforge.data.builtin import _split_names

    if not 1 <= tasks <= 10:
        raise PixelforgeError(f"--tasks {tasks}: split-digits has 10 classes; give 1 to 10 tasks")
    digits = load_digits()
    splits = _split_names(digits.target, seed)
    groups = np.array_split(np.arange(10), tasks)
    task_of = {int(c): k for k, group in enumerate(groups) for c in group}
    out = Path(out)
    with staged_folder(out) as staging:  # `out` is new or empty: the caller checked
        for i, (image, label, split) in enumerate(zip(digits.images, digits.target, splits)):
            pixels = Image.fromarray((image * (255 / 16)).astype(np.uint8)).resize((32, 32), Image.BICUBIC)
            folder = staging / f"task{task_of[int(label)] + 1}" / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            pixels.save(folder / f"{i:04d}.png")
    return [out / f"task{k + 1}" for k in range(tasks)]
