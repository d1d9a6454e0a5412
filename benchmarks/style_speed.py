"""Seconds to stylize one 512x512 image with a style package through ONNX Runtime (torch-free runtime).

    PYTHONPATH=src python benchmarks/style_speed.py PACKAGE [--size 512] [--repeats 5] [--threads 2]
    PYTHONPATH=src python benchmarks/style_speed.py --untrained 16,24 [--noise 3] [--threads 1]

Prints the median wall seconds and the process CPU seconds per image (on a shared machine CPU / threads is the
better guide to a quiet machine's wall time). `--untrained W1,W2` times untrained transformers of those widths
(exported to ONNX in a temporary folder, run through the same ONNX Runtime session settings, without the package's
pre- and post-processing): the speed of an architecture before paying for its training (weights do not change it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(predict, image, repeats: int) -> dict:
    predict(image)  # first call: allocations
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        predict(image)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"median_wall_s": round(statistics.median(walls), 3), "median_cpu_s": round(statistics.median(cpus), 3),
            "min_wall_s": round(min(walls), 3)}


def untrained_forward(width: int, noise: int, blocks: int, threads: int, folder: Path):
    import torch

    from pixelforge.deploy.export.onnx import export_traced
    from pixelforge.deploy.runtime.session import onnx_session
    from pixelforge.tasks.style.transformer import TransformerNet

    net = TransformerNet(width, blocks, noise_channels=noise).eval()
    path = export_traced(net, (torch.rand(1, 3, 64, 64),), folder / f"w{width}.onnx", ["image"], ["stylized"], 17,
                         dynamic_axes={"image": {2: "height", 3: "width"}, "stylized": {2: "height", 3: "width"}})
    session = onnx_session(path, threads, ["CPUExecutionProvider"])
    return lambda image: session.run(["stylized"], {"image": image})[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("package", nargs="?")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--untrained", default="", help="comma-separated widths of untrained transformers to time")
    parser.add_argument("--noise", type=int, default=0)
    parser.add_argument("--blocks", type=int, default=5)
    args = parser.parse_args()
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    common = {"size": args.size, "threads": args.threads}
    if args.package:
        from pixelforge.deploy.runtime.style import StyleRuntime

        runtime = StyleRuntime(args.package, threads=args.threads)
        print(json.dumps({**common, **timed(lambda x: runtime.predict_images([x]), image, args.repeats)}))
    with tempfile.TemporaryDirectory() as folder:
        batch = (image.transpose(2, 0, 1)[None] / 255).astype(np.float32)
        for width in [int(w) for w in args.untrained.split(",") if w]:
            forward = untrained_forward(width, args.noise, args.blocks, args.threads, Path(folder))
            print(json.dumps({**common, "untrained_width": width, "noise": args.noise, "blocks": args.blocks,
                              **timed(forward, batch, args.repeats)}))


if __name__ == "__main__":
    main()
