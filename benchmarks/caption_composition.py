"""Round-three captioning levers (docs/captioning.md, "Numbers"): held-out attribute match and BLEU-4 of decoder
variants on the built-in shapes captions, trained on cached frozen Lite0 features (the default encoder: stride-8
places with colour and x, y) with the real `AttentionDecoder`, one thread, greedy decoding.

    pixelforge data make shapes --task caption --out data/shapes-captions
    python -m benchmarks.caption_composition --data data/shapes-captions                       # round two's decoder
    python -m benchmarks.caption_composition --data data/shapes-captions --init zero --output h --lstm where

Its own short training loop (not the engine's), on the canonical caption of each training image unless `--all`,
so one variant takes a few CPU minutes; the default's own numbers come from `pixelforge train`. The features are
cached in `--cache` (first run: about 4 CPU minutes). After training it prints the wrong test captions with their
truths and counts which word was wrong (colour or shape, which object, held-out pair or not).
"""
import argparse
import math
import time
from collections import Counter
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from pixelforge.data.captions.reader import read_captions
from pixelforge.data.captions.shapes import attribute_pairs
from pixelforge.data.captions.tokenizer import Tokenizer
from pixelforge.metrics.captions import attribute_match, corpus_bleu
from pixelforge.models.captioner import AttentionDecoder, build_captioner
from pixelforge.tasks.caption.task import load_images

p = argparse.ArgumentParser()
p.add_argument("--data", default="data/shapes-captions")
p.add_argument("--cache", default="/tmp/caption-features-s8-128.pt")
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--lr", type=float, default=3e-3)
p.add_argument("--ls", type=float, default=0.1)
p.add_argument("--pen", type=float, default=0.02)
p.add_argument("--dropout", type=float, default=0.3)
p.add_argument("--wdrop", type=float, default=0.0)
p.add_argument("--init", default="mean")
p.add_argument("--output", default="h+context")
p.add_argument("--lstm", default="context")
p.add_argument("--ctx", type=int, default=1)
p.add_argument("--gated", type=int, default=0)
p.add_argument("--attention", default="content")
p.add_argument("--all", action="store_true", help="all 3-5 captions of each image, as `pixelforge train` does")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--show", type=int, default=12)
a = p.parse_args()
torch.manual_seed(a.seed)
torch.set_num_threads(1)
src = read_captions(a.data)
split = {s: src.split(s) for s in ("train", "val", "test")}
tok = Tokenizer.fit([c for i in split["train"] for c in i.captions], 1)
if Path(a.cache).exists():
    feats = torch.load(a.cache)
else:
    enc = build_captioner("tf_efficientnet_lite0", len(tok), "imagenet", stride=8).encoder.eval()
    feats, started = {}, time.process_time()
    for s, images in split.items():
        with torch.no_grad():
            feats[s] = torch.cat([enc(load_images([i.path for i in images[k:k + 64]], 128, enc.mean, enc.std))
                                  for k in range(0, len(images), 64)])
    torch.save(feats, a.cache)
    print(f"features {time.process_time() - started:.0f} CPU s", tuple(feats["train"].shape), flush=True)
dec = AttentionDecoder(len(tok), feats["train"].shape[2], dropout=a.dropout, context_logits=bool(a.ctx),
                       init_state=a.init, output_context=a.output == "h+context", lstm_input=a.lstm, gated_logits=bool(a.gated), attention=a.attention)
L = 26


def pairs(s, first):
    rows, tokens = [], []
    for n, image in enumerate(split[s]):
        for c in (image.captions[:1] if first else image.captions):
            ids = tok.encode(c, 24)[:L]
            t = torch.full((L,), tok.pad)
            t[:len(ids)] = torch.tensor(ids)
            rows.append(n)
            tokens.append(t)
    return torch.tensor(rows), torch.stack(tokens)


def evaluate(s):
    dec.eval()
    hyps = []
    with torch.no_grad():
        for k in range(0, len(split[s]), 256):
            out, _ = dec.greedy(feats[s][k:k + 256], tok.start, tok.end, 25)
            hyps += [tok.decode(r) for r in out.tolist()]
    dec.train()
    b = corpus_bleu(hyps, [i.captions for i in split[s]])
    return b, attribute_match(hyps, [i.objects for i in split[s]]), hyps


rows, T = pairs("train", not a.all)
opt = torch.optim.AdamW(dec.parameters(), lr=a.lr, weight_decay=0.01)
steps = a.epochs * math.ceil(len(T) / 64)
warm = max(1, int(0.3 * steps / a.epochs))
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: min(1, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
cpu, wall = time.process_time(), time.time()
for ep in range(a.epochs):
    perm = torch.randperm(len(T))
    for k in range(0, len(T), 64):
        idx = perm[k:k + 64]
        tk = T[idx]
        tk = tk[:, :int((tk != tok.pad).sum(1).max())]
        logits, alphas = dec(feats["train"][rows[idx]], tk, 0.0, a.wdrop, tok.unk)
        tg = tk[:, 1:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tg.reshape(-1), ignore_index=tok.pad,
                               label_smoothing=a.ls)
        valid = (tg != tok.pad).float()[:, :, None]
        pen = ((1 - (alphas * valid).sum(1)) ** 2).mean()
        opt.zero_grad()
        (loss + a.pen * pen).backward()
        nn.utils.clip_grad_norm_(dec.parameters(), 5.0)
        opt.step()
        sched.step()
    vb, va, _ = evaluate("val")
    tb, ta, hyps = evaluate("test")
    print(f"epoch {ep + 1}: val BLEU-4 {vb['bleu4']:.1f} attribute match {100 * va:.1f}% | test BLEU-4 "
          f"{tb['bleu4']:.1f} attribute match {100 * ta:.1f}%  ({time.process_time() - cpu:.0f} CPU s, "
          f"{time.time() - wall:.0f} s wall)", flush=True)
print("test BLEU-1..4", " / ".join(f"{tb[f'bleu{n}']:.1f}" for n in range(1, 5)))
held = {("green", "triangle"), ("red", "star"), ("blue", "circle"), ("yellow", "square")}
kinds = Counter()
shown = 0
for hyp, image in zip(hyps, split["test"]):
    truth = [(o["colour"], o["shape"]) for o in sorted(image.objects, key=lambda o: o["x"])]
    said = attribute_pairs(hyp)
    if sorted(said) == sorted(truth):
        continue
    if shown < a.show:
        print("  ", hyp, "| truth", truth)
        shown += 1
    if len(said) != len(truth):
        kinds["number of objects"] += 1
        continue
    for k, (s, t) in enumerate(zip(said, truth)):
        pair = "held-out" if t in held else "seen"
        kinds.update([f"object {k + 1} ({pair}) colour"] * (s[0] != t[0]) + [f"object {k + 1} ({pair}) shape"] * (s[1] != t[1]))
print("wrong words:", dict(sorted(kinds.items())))
