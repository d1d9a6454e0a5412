"""Screen GAN levers quickly (docs/gan.md, "Levers measured"): the GAN task's own training step
(`GANStep.training_step`: the same model, optimizers, losses and DiffAugment) for E epochs on the built-in digits,
without the engine's per-epoch validation and checkpoints, then scored as `pixelforge evaluate` scores a run:
fid_lite0 of 500 EMA samples against 500 real images, the real-vs-real floor on a disjoint 500, and the conditional
accuracy of 100 samples per class by the small CNN judge trained on the real training images.

    OMP_NUM_THREADS=1 python -m benchmarks.gan_levers '{"epochs": 40}' defaults-40
    OMP_NUM_THREADS=1 python -m benchmarks.gan_levers '{"epochs": 20, "label_dim": 128, "mode_seeking": 0}' emb128

The first argument overrides `GanConfig` keys (plus "eval_every": score every N epochs too); the second names the
result: OUT/NAME.pt (the model's weights) and OUT/NAME.png (a row of 10 samples per class), OUT = --out or
$TMPDIR/pixelforge-gan-levers. Times are process CPU seconds (training plus any intermediate scoring).
"""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path

import torch


def main(argv: list[str]) -> int:
    from pixelforge.tasks.gan.config import GanConfig
    from pixelforge.tasks.gan.data import decode, disjoint_real_sets, read_source, to_uint8, training_samples
    from pixelforge.tasks.gan.fid import build_extractor, extract, fid_kid
    from pixelforge.tasks.gan.images import save_grid
    from pixelforge.tasks.gan.judge import own_judge
    from pixelforge.tasks.gan.models import build_gan
    from pixelforge.tasks.gan.setup import judge_size, native_size, reference_features
    from pixelforge.tasks.gan.task import GANStep, balanced_labels, generate

    over, name = json.loads(argv[0]), argv[1]
    import tempfile

    default = Path(tempfile.gettempdir()) / "pixelforge-gan-levers"
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else default
    out.mkdir(parents=True, exist_ok=True)
    eval_every = int(over.pop("eval_every", 0))
    cfg = GanConfig(**{"data": "digits", "conditional": True, "img_size": 32, "epochs": 60, "batch_size": 32,
                       "lr": 2e-4, **over})
    torch.manual_seed(cfg.seed)
    source = read_source("digits")
    classes = list(source.classes)
    train = decode(training_samples(source), classes, cfg.img_size, 1)
    extractor = build_extractor(None)
    set_a, set_b = disjoint_real_sets(source, 500, cfg.seed)
    real_a = reference_features(set_a, classes, cfg.img_size, 1, extractor)
    floor = fid_kid(real_a, reference_features(set_b, classes, cfg.img_size, 1, extractor))["fid"]
    native = native_size(cfg)
    model = build_gan(cfg, 1, len(classes), native, judge_size(cfg, native))
    step = GANStep(model, cfg, len(classes), extractor, real_a[:128], 1.0)
    optimizers = {key: pair[0] for key, pair in step.configure_optimizers(cfg.lr, 0, 0).items()}
    ctx = types.SimpleNamespace(optimizers=optimizers, backward=lambda loss: loss.backward(), global_step=0)
    judge_run = types.SimpleNamespace(config=cfg, run_dir=out / "judge-run", channels=1, classes=classes)
    judge = own_judge(judge_run, source)

    def score():
        model.ema.eval()
        fake = generate(model.ema, 500, cfg.latent_dim, balanced_labels(500, len(classes)), 2024)
        fid = fid_kid(real_a, extract(extractor, to_uint8(fake)))["fid"]
        labels = torch.arange(len(classes)).repeat_interleave(100)
        hits = judge.predict(generate(model.ema, 100 * len(classes), cfg.latent_dim, labels, 2025)) == labels
        return fid, float(hits.float().mean()), [round(float(hits[labels == i].float().mean()), 2)
                                                   for i in range(len(classes))]

    start = time.process_time()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for idx in torch.randperm(len(train)).split(cfg.batch_size):
            if len(idx) == cfg.batch_size:
                step.training_step(model, (train.images[idx], train.labels[idx]), ctx)
                ctx.global_step += 1
        if eval_every and epoch % eval_every == 0 and epoch < cfg.epochs:
            fid, accuracy, _ = score()
            print(f"  epoch {epoch}: fid_lite0 {fid:.1f} ({fid / floor:.2f}x) accuracy {accuracy:.3f} "
                  f"cpu {time.process_time() - start:.0f}s", flush=True)
    cpu = time.process_time() - start
    fid, accuracy, per_class = score()
    print(f"{name}: fid_lite0 {fid:.1f} floor {floor:.1f} = {fid / floor:.2f}x conditional accuracy {accuracy:.3f} "
          f"per class {per_class} generator steps {ctx.global_step} cpu {cpu:.0f}s", flush=True)
    torch.save(model.state_dict(), out / f"{name}.pt")
    grid = generate(model.ema.eval(), 100, cfg.latent_dim, torch.arange(10).repeat_interleave(10), 1234)
    save_grid(grid, out / f"{name}.png", 10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
