"""B2, full fine-tuning throughput: training images per second of the whole network (Lite0, batch 32, 224 px).

Plain: the tutorial loop (PIL decoding each epoch in 2 workers, fp32, default layout, SGD). pixelforge: `pixelforge
train --strategy full` with its defaults: images decoded once into RAM, channels_last, per-image transforms on one
thread, and `--precision auto` (on a CPU with native BF16: bf16 mixed precision, depthwise convolutions in fp32).
Both train on the same images; the last of `throughput_epochs` epochs is measured, so one-time warm-up (kernel
selection, pixelforge's decode cache) is not in the number: it is in B1 and B3. `Workload.compile_full` adds
`--compile` (L7/L8 measure what it gives).
"""

from __future__ import annotations

from benchmarks.pairs import FreshProcess, Row, alternate, captured_log, fill
from benchmarks.plain import plain_training
from benchmarks.workload import Workload


def plain_side(work: Workload) -> dict:
    result = plain_training(work.root, work.throughput_subset(), work.val_idx, work.img_size, work.throughput_epochs,
                            work.batch_size, work.workers, validate=False, seed=work.seed)
    return {"images_per_s": result["epochs"][-1]["train_images_per_s"], "epochs": result["epochs"]}


def pixelforge_side(work: Workload, data: str, run_index: list[int]) -> dict:
    import pixelforge
    from pixelforge.runs import folder as rd

    run_index[0] += 1
    with captured_log():
        result = pixelforge.train(data, strategy="full", compile=work.compile_full, epochs=work.throughput_epochs, img_size=work.img_size,
                                  batch_size=work.batch_size, out=str(work.scratch / f"b2-{run_index[0]}"),
                                  quiet=True, seed=work.seed)
    rows = rd.read_metrics(result.run_dir / "metrics.csv")
    return {"images_per_s": rows[-1]["images_per_s"], "path": result.path,
            "epochs": [{"epoch": r["epoch"], "images_per_s": r["images_per_s"]} for r in rows]}


def run(work: Workload, repeats: int, say=print) -> list[Row]:
    n = len(work.throughput_subset())
    say(f"B2 full fine-tuning throughput: {n} images/epoch, epoch {work.throughput_epochs} measured")
    data, counter = str(work.throughput_csv()), [0]
    runs = alternate(FreshProcess(plain_side, work), lambda: pixelforge_side(work, data, counter), repeats, say)
    row = Row("B2", f"full fine-tune, img/s (Lite0, batch {work.batch_size}, {work.img_size} px)", "img/s", True,
              "tutorial loop, fp32",
              "train --strategy full --compile" if work.compile_full else "train --strategy full", goal=3.0)
    fill(row, runs, lambda r: r["images_per_s"])
    row.details = {"pixelforge_path": runs[-1]["pixelforge"]["result"]["path"], "images_per_epoch": n}
    return [row]
