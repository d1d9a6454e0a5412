"""Learned compression: the unseen test photos, and the decode time of a 512 x 512 image (docs/compression.md).

    python -m benchmarks.compress photos data/photos      # scikit-image's colour photos, as PNG (never trained on)
    python -m benchmarks.compress decode PACKAGE           # decode time of astronaut (512 x 512), package and run

Times are wall and process CPU seconds (median of 5, after one warm-up): on a shared machine CPU time is the
steadier number. The package is timed torch-free (ONNX Runtime + CompressAI's rANS extension).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle")


def write_photos(out: Path) -> None:
    from PIL import Image
    from skimage import data

    out.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        pixels = getattr(data, name)()
        pixels = pixels[0] if isinstance(pixels, tuple) else pixels  # stereo_motorcycle: (left, right, disparity)
        target = out / f"{name}.png"
        if not target.exists():
            Image.fromarray(pixels).save(target)
        print(target, pixels.shape)


def time_call(fn, repeats: int = 5) -> tuple[float, float]:
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def decode_times(package: Path, threads: int) -> None:
    from skimage import data

    from pixelforge.deploy.runtime.compress import CompressionRuntime

    pixels = data.astronaut()
    runtime = CompressionRuntime(package, threads=threads)
    file = runtime.compress(pixels)
    wall, cpu = time_call(lambda: runtime.decompress(file))
    print(f"package {package}: 512x512 astronaut, {len(file)} bytes ({8 * len(file) / pixels[..., 0].size:.3f} bpp); "
          f"decode {wall:.3f} s wall, {cpu:.3f} s CPU ({threads} thread(s)); torch imported: {'torch' in sys.modules}")
    encode_wall, encode_cpu = time_call(lambda: runtime.compress(pixels))
    print(f"encode {encode_wall:.3f} s wall, {encode_cpu:.3f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("photos").add_argument("out", type=Path)
    decode = sub.add_parser("decode")
    decode.add_argument("package", type=Path)
    decode.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.command == "photos":
        write_photos(args.out)
    else:
        decode_times(args.package, args.threads)


if __name__ == "__main__":
    main()
