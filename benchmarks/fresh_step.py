"""One lever measurement in a fresh interpreter (L11): `python -m benchmarks.fresh_step --variant ...` prints JSON.

Process-wide settings (glibc's malloc thresholds) cannot be undone, so each side of such a pair runs in its own process.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--img-size", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--reuse-freed-memory", action="store_true")
    args = parser.parse_args()
    if args.reuse_freed_memory:
        from pixelforge.engine.cpu_memory import reuse_freed_memory

        reuse_freed_memory()
    import torch

    from benchmarks.levers import make_stepper
    from benchmarks.plain import plain_model

    torch.manual_seed(0)
    torch.set_flush_denormal(True)
    x = torch.randn(args.batch, 3, args.img_size, args.img_size)
    y = torch.randint(0, args.classes, (args.batch,))
    print(json.dumps(make_stepper(plain_model(args.classes), x, y, args.variant, args.steps)()))


if __name__ == "__main__":
    main()
