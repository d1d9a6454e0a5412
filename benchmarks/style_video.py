"""Flicker of a style package on a static-camera clip, frame by frame and with `--blend`.

The clip (written to OUT/static.mp4) is a still photo with camera-like noise (sigma 3 grey levels) and a ball
rolling across it, 24 frames. Flicker = mean |change| between consecutive output frames / the input's.

    PYTHONPATH=src python benchmarks/style_video.py PACKAGE OUT [--size 256]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from pixelforge.deploy.video import run_video

parser = argparse.ArgumentParser()
parser.add_argument("package")
parser.add_argument("out")
parser.add_argument("--size", type=int, default=256)
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
clip = out / "static.mp4"
if not clip.exists():
    still = cv2.resize(data.coffee()[..., ::-1], (args.size * 3 // 2, args.size)).astype(np.float32)
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 12, still.shape[1::-1])
    rng = np.random.default_rng(0)
    for t in range(24):
        frame = still + rng.normal(0, 3, still.shape)
        cv2.circle(frame, (20 + 12 * t, args.size // 4), args.size // 12, (40, 200, 240), -1)
        writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    writer.release()
for blend in (0.0, 0.6):
    target = out / f"styled-blend{blend}.mp4"
    target.unlink(missing_ok=True)
    result = run_video(args.package, str(clip), target, blend=blend)
    print(json.dumps({"blend": blend, "frames": result.frames, "fps": round(result.fps, 2), **result.summary}))
