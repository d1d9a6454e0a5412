"""`python -m benchmarks.gpu`: the GPU cases of issue 20, run when a CUDA machine is lent (CI never has one).

    python -m benchmarks.gpu --out DIR                  # G1-G3 on the first CUDA device, ~4 min on an H200
    python -m benchmarks.gpu --data PHOTOS --out DIR    # G3 on a real image folder too
    python -m benchmarks.gpu --smoke --out DIR          # tiny sizes on the CPU: checks the code runs (tests do this)

G1  ResNet-50 (torchvision, random init) training steps on synthetic 224 px batches of 256 held on the device, SGD
    with momentum as NVIDIA's recipe: fp32, TF32, AMP fp16 (loss scaling) and AMP bf16, NCHW and channels_last, and
    cuDNN's autotuner (`cudnn.benchmark`) off and on, in img/s, beside NVIDIA's published single-GPU figure
    (DeepLearningExamples, ResNet50 v1.5 for PyTorch, A100 80GB: 938 img/s TF32, 2470 img/s mixed precision, with
    real JPEG decoding by DALI; the repository publishes none for the H100 or H200).
G2  the same model as a user trains it, from a folder of JPEGs: `pixelforge.train` (its defaults on CUDA: bf16
    autocast, channels_last, DataLoader workers) against the plain torchvision loop on the same folder (ImageFolder,
    RandomResizedCrop + flip, 8 workers, pinned memory, AMP bf16, channels_last), img/s of the last epoch: the data
    pipeline counts here, not only the step.
G3  `pixelforge train` on a real photo folder (EfficientNet-Lite0, linear head and full fine-tune) as a user runs it,
    whole-process wall time and validation accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

NVIDIA_A100 = {"tf32": 938, "amp": 2470}  # img/s, 1 GPU, DeepLearningExamples ResNet50 v1.5 PyTorch README


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_rate(device: torch.device, precision: str, channels_last: bool, autotune: bool, *, batch: int, size: int,
              steps: int, warmup: int, arch: str = "resnet50") -> float:
    """Training images per second of `arch` on one synthetic batch kept on the device (the step alone)."""
    torch.backends.cudnn.benchmark = autotune
    # PyTorch lets cuDNN use TF32 for fp32 convolutions by default: "fp32" switches it off to be plain fp32.
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    model = getattr(torchvision.models, arch)().to(device)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.256, momentum=0.875, weight_decay=3.0517578125e-05)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(warmup):
        step()
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch * steps / (time.perf_counter() - started)


# (precision, channels_last, cudnn.benchmark): every precision once with the autotuner, the layouts under both AMP
# kinds, and the autotuner's own share on the fastest layout.
G1_VARIANTS = (("fp32", False, True), ("tf32", False, True), ("tf32", True, True), ("fp16", False, True),
               ("fp16", True, True), ("bf16", False, True), ("bf16", True, False), ("bf16", True, True))


def g1_step_throughput(device, smoke: bool) -> list[dict]:
    shape = dict(batch=4, size=32, steps=1, warmup=1, arch="resnet18") if smoke else \
        dict(batch=256, size=224, steps=20, warmup=5)
    rows = []
    for precision, channels_last, autotune in G1_VARIANTS:
        rate = step_rate(device, precision, channels_last, autotune, **shape)
        rows.append({"precision": precision, "channels_last": channels_last, "cudnn_benchmark": autotune,
                     "images_per_s": round(rate, 1)})
        print(f"G1 {precision:4s} {'channels_last' if channels_last else 'NCHW':13s} "
              f"cudnn.benchmark={autotune!s:5s} {rate:8.1f} img/s", flush=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False  # PyTorch's defaults
    return rows


def write_jpeg_folder(root: Path, images: int, classes: int, size: int) -> Path:
    """Smooth random colour fields as JPEGs in class folders: decodes like a photo, costs no download."""
    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((size, size), Image.BICUBIC).save(folder / f"{i:05d}.jpg", quality=90)
    return root


def plain_folder_training(root: Path, device, *, img_size: int, batch: int, epochs: int, workers: int,
                          arch: str) -> list[float]:
    """The torchvision way, AMP bf16 + channels_last: img/s per epoch."""
    from torchvision import transforms

    tf = transforms.Compose([transforms.RandomResizedCrop(img_size), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    data = torchvision.datasets.ImageFolder(str(root), tf)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, num_workers=workers,
                                         pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                                         drop_last=True)
    model = getattr(torchvision.models, arch)(num_classes=len(data.classes)).to(device)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rates = []
    for _ in range(epochs):
        seen, started = 0, time.perf_counter()
        for x, y in loader:
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(y)
        sync(device)
        rates.append(seen / (time.perf_counter() - started))
    return rates


def g2_folder_training(device, work: Path, smoke: bool) -> dict:
    import pixelforge

    shape = dict(images=64, size=40, img_size=32, batch=8, epochs=2, arch="resnet18") if smoke else \
        dict(images=2048, size=256, img_size=224, batch=256, epochs=3, arch="resnet50")
    root = write_jpeg_folder(work / "jpegs", shape["images"], 10, shape["size"])
    workers = min(8, (os.cpu_count() or 2) // 2)
    print(f"G2 {shape['images']} JPEGs written; the plain loop starts", flush=True)
    plain = plain_folder_training(root, device, img_size=shape["img_size"], batch=shape["batch"],
                                  epochs=shape["epochs"], workers=workers, arch=shape["arch"])
    result = pixelforge.train(str(root), model=shape["arch"], weights="none", img_size=shape["img_size"],
                              batch_size=shape["batch"], epochs=shape["epochs"], strategy="full", lr=0.1,
                              accelerator=device.type, out=str(work / "pf-run"))
    lines = (result.run_dir / "metrics.csv").read_text().splitlines()
    column = lines[0].split(",").index("images_per_s")
    ours = [float(line.split(",")[column]) for line in lines[1:]]
    summary = json.loads((result.run_dir / "summary.json").read_text())
    row = {"arch": shape["arch"], "images": shape["images"], "plain_images_per_s": [round(r, 1) for r in plain],
           "pixelforge_images_per_s": ours, "pixelforge_precision": summary["precision"],
           "ratio_last_epoch": round(ours[-1] / plain[-1], 2)}
    print(f"G2 {shape['arch']} from {shape['images']} JPEGs, last epoch: plain {plain[-1]:.1f} img/s, "
          f"pixelforge {ours[-1]:.1f} img/s ({summary['precision']}): {row['ratio_last_epoch']:.2f}x", flush=True)
    return row


def g3_real_photos(data: Path, work: Path, device) -> list[dict]:
    rows = []
    for strategy, epochs in (("linear", 10), ("full", 5)):
        out = work / f"photos-{strategy}"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pixelforge", "train", "--data", str(data), "--out", str(out),
                               "--strategy", strategy, "--epochs", str(epochs), "--accelerator", device.type],
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            rows.append({"strategy": strategy, "error": (done.stdout + done.stderr)[-2000:]})
            print(f"G3 {strategy}: failed\n{rows[-1]['error']}", flush=True)
            continue
        summary = json.loads((out / "summary.json").read_text())
        rows.append({"strategy": strategy, "epochs": epochs, "wall_s": round(wall, 1),
                     "val_acc": summary["best_val_accuracy"], "precision": summary["precision"],
                     "path": summary["path"], "images_per_s": summary.get("images_per_s")})
        print(f"G3 {strategy} {epochs} epochs: {wall:.1f} s wall, val acc {summary['best_val_accuracy']:.4f}, "
              f"{summary['precision']}, {summary['path']}", flush=True)
    return rows


def machine(device) -> dict:
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cores": os.cpu_count()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version())
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, on the CPU when there is no GPU")
    parser.add_argument("--data", type=Path, default=None, help="a real image folder for G3 (skipped without)")
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu-DATE.json and the runs")
    parser.add_argument("--only", default="G1,G2,G3", help="comma-separated cases (default G1,G2,G3)")
    parser.add_argument("--watchdog", type=float, default=0,
                        help="print every thread's stack each this many seconds (a lent machine's minutes are few: "
                             "a stall must say where it is)")
    args = parser.parse_args(argv)
    cases = {c.strip().upper() for c in args.only.split(",")}
    if args.watchdog:
        import faulthandler

        faulthandler.dump_traceback_later(args.watchdog, repeat=True)
    if not torch.cuda.is_available() and not args.smoke:
        print("no CUDA device: the GPU cases need one (--smoke runs them tiny on the CPU)")
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(device), "nvidia_a100_published": NVIDIA_A100}
    print("machine:", report["machine"], flush=True)
    if "G1" in cases:
        report["G1"] = g1_step_throughput(device, args.smoke)
    if "G2" in cases:
        report["G2"] = g2_folder_training(device, args.out, args.smoke)
    if "G3" in cases and args.data and args.data.is_dir():
        report["G3"] = g3_real_photos(args.data, args.out, device)
    path = args.out / f"gpu-{'smoke-' if args.smoke else ''}{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
