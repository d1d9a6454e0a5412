"""The plain tutorial loop as a user's whole script, for B1W (benchmarks/b1_whole_process.py): every import, the
ImageFolder datasets, Lite0 with its ImageNet weights, one epoch of full fine-tuning and the val accuracy.

    python -m benchmarks.plain_script ROOT SPLIT.json IMG_SIZE BATCH WORKERS SEED   # prints {"val_acc": ...}
"""

import json
import sys

from benchmarks.plain import plain_training  # torch, torchvision, timm: imported as the script starts


def main(argv: list[str]) -> None:
    root, split, img_size, batch, workers, seed = argv
    indices = json.loads(open(split).read())
    result = plain_training(root, indices["train"], indices["val"], int(img_size), 1, int(batch), int(workers),
                            seed=int(seed))
    print(json.dumps({"val_acc": result["epochs"][-1]["val_acc"], "wall_s": result["wall_s"]}))


if __name__ == "__main__":
    main(sys.argv[1:])
