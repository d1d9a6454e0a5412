"""B1W's floor: the least a whole process can do for `pixelforge train`'s result, beside the plain loop and pixelforge.

    python -m benchmarks.b1w_floor --repeats 3     # ~3 min on 2 idle cores (the plain script is ~30 s a run)

Issue 20 asks `pixelforge train` (defaults) to finish >= 6x faster than the plain tutorial loop's first epoch, both
timed as whole processes. This script asks what that means on the machine it runs on: it also times a bare script
that does only the unavoidable part of pixelforge's result, with nothing of pixelforge's:

- import numpy and Pillow; decode and centre-crop the same 245 photos on two threads (Pillow's JPEG draft mode on);
- the Lite0 features through the feature graph pixelforge cached (the same ONNX file, batch 16, two threads), run by
  OpenVINO in fp32 where it is installed (as pixelforge does since round nine), else ONNX Runtime;
- import torch, train the same linear head (AdamW, 10 epochs, batch 32) on the same train split, score the val
  split and save the head with `torch.save`.

No augmentation, calibration, checkpoints per epoch, report, model card, config or data checks: whatever is left
between the floor and pixelforge is what those cost. The floor still imports TorchDynamo (~1.2 s): constructing any
`torch.optim` optimizer does (`Optimizer.add_param_group` is wrapped by `torch._disable_dynamo`, whose first call
runs `import torch._dynamo`, torch/_compile.py), so `head_s` includes it. All three are new processes timed from launch to exit,
alternating (plain, pixelforge, floor; then reversed), with one `$PIXELFORGE_HOME` that already holds the graph.
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"


def floor_child(root: str, split_file: str, graph: str) -> None:
    """The bare script, run as its own process: prints its phases and val accuracy as one JSON line."""
    started = time.perf_counter()
    from concurrent.futures import ThreadPoolExecutor

    from importlib.util import find_spec

    import numpy as np
    from PIL import Image

    split = json.loads(Path(split_file).read_text())
    files, labels = split["files"], np.array(split["labels"])

    def load(path: str) -> np.ndarray:  # resize the shorter side to 256, centre 224, scale to [-1, 1] (Lite0's)
        image = Image.open(path)
        image.draft("RGB", (256, 256))
        image = image.convert("RGB")
        scale = 256 / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
        left, top = (image.width - 224) // 2, (image.height - 224) // 2
        array = np.asarray(image.crop((left, top, left + 224, top + 224)), np.float32) / 127.5 - 1.0
        return array.transpose(2, 0, 1)

    imported = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        images = np.stack(list(pool.map(load, files)))
    decoded = time.perf_counter()
    engine = "openvino" if find_spec("openvino") else "onnxruntime"  # the faster one, as pixelforge picks (L25)
    if engine == "openvino":
        import openvino

        compiled = openvino.Core().compile_model(graph, "CPU", {"INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY",
                                                                 "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        run = lambda batch: request.infer({0: batch})[compiled.output("features")].copy()  # noqa: E731
    else:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads would slow the import
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        run = lambda batch: session.run(["features"], {name: batch})[0]  # noqa: E731
    features = np.concatenate([run(images[i:i + 16]) for i in range(0, len(images), 16)])
    run = None
    extracted = time.perf_counter()
    import torch

    torch_imported = time.perf_counter()
    train, val = np.array(split["train"]), np.array(split["val"])
    torch.manual_seed(0)
    x, y = torch.from_numpy(features), torch.from_numpy(labels)
    head = torch.nn.Linear(x.shape[1], int(labels.max()) + 1)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)
    order = np.random.default_rng(0)
    for _ in range(10):
        shuffled = order.permutation(train)
        for i in range(0, len(shuffled), 32):
            batch = shuffled[i:i + 32]
            loss = torch.nn.functional.cross_entropy(head(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = float((head(x[val]).argmax(1) == y[val]).float().mean())
    torch.save(head.state_dict(), Path(split_file).with_suffix(".head.pt"))
    ended = time.perf_counter()
    print(json.dumps({"imports_s": round(imported - started, 2), "decode_s": round(decoded - imported, 2),
                      "features_s": round(extracted - decoded, 2), "import_torch_s": round(torch_imported - extracted, 2),
                      "head_s": round(ended - torch_imported, 2),
                      "val_acc": round(accuracy, 4), "engine": engine}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--floor-child", nargs=3, metavar=("ROOT", "SPLIT", "GRAPH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        floor_child(*args.floor_child)
        return
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: not found (the hymenoptera photos; --data ROOT)")
    from benchmarks.b1_whole_process import pixelforge_process, plain_process, timed_process
    from benchmarks.workload import Workload

    work = Workload("hymenoptera", args.data)
    home = work.scratch / "pixelforge-home"
    pixelforge_process(work, home, "warm")  # exports the feature graph into the home, untimed
    graph = sorted(glob.glob(str(home / "onnx-features" / "*.onnx")))[0]
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(str(work.root))
    split = work.scratch / "floor-split.json"
    split.write_text(json.dumps({"files": [p for p, _ in folder.samples], "labels": [c for _, c in folder.samples],
                                 "train": work.train_idx, "val": work.val_idx}))
    floor_command = [sys.executable, "-m", "benchmarks.b1w_floor", "--floor-child", str(work.root), str(split), graph]
    results: dict[str, list[dict]] = {"plain": [], "pixelforge": [], "floor": []}
    for index in range(args.repeats):
        sides = [("plain", lambda: plain_process(work)),
                 ("pixelforge", lambda: pixelforge_process(work, home, f"run-{index}")),
                 ("floor", lambda: _floor(timed_process(floor_command)))]
        for label, side in (sides if index % 2 == 0 else sides[::-1]):
            result = side()
            results[label].append(result)
            print(f"  {label:<10} {result['wall_s']:6.2f} s wall {result['cpu_s']:6.2f} s CPU  "
                  f"val acc {result['val_acc']:.3f}", flush=True)
    median = {label: statistics.median(r["wall_s"] for r in rs) for label, rs in results.items()}
    print(f"\nmedians of {args.repeats}, whole processes (s): plain {median['plain']:.2f}, pixelforge "
          f"{median['pixelforge']:.2f}, floor {median['floor']:.2f}")
    print(f"plain / pixelforge: {median['plain'] / median['pixelforge']:.2f}x;  plain / floor: "
          f"{median['plain'] / median['floor']:.2f}x;  6x needs <= {median['plain'] / 6:.2f} s")
    print("floor phases (last run):", {k: v for k, v in results["floor"][-1].items() if k.endswith("_s")})
    out = ROOT / "benchmarks" / "results" / f"b1w-floor-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"medians_s": median, "results": results}, indent=1))
    print(f"written: {out}")


def _floor(result: dict) -> dict:
    result.update(json.loads(result.pop("stdout").strip().splitlines()[-1]))
    return result


if __name__ == "__main__":
    main()
