"""Seconds to stylize one 512x512 image with a style package through ONNX Runtime (torch-free runtime).

    PYTHONPATH=src python benchmarks/style_speed.py PACKAGE [--size 512] [--repeats 5] [--threads 2]

Prints the median wall seconds and the process CPU seconds per image (on a shared machine CPU / threads is the
better guide to a quiet machine's wall time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from pixelforge.deploy.runtime.style import StyleRuntime

parser = argparse.ArgumentParser()
parser.add_argument("package")
parser.add_argument("--size", type=int, default=512)
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()
runtime = StyleRuntime(args.package, threads=args.threads)
image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
runtime.predict_images([image])  # first call: allocations
walls, cpus = [], []
for _ in range(args.repeats):
    wall, cpu = time.perf_counter(), time.process_time()
    runtime.predict_images([image])
    walls.append(time.perf_counter() - wall)
    cpus.append(time.process_time() - cpu)
print(json.dumps({"size": args.size, "threads": args.threads, "median_wall_s": round(statistics.median(walls), 3),
                  "median_cpu_s": round(statistics.median(cpus), 3), "min_wall_s": round(min(walls), 3)}))
