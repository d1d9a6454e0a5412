"""Captioning levers on the built-in shapes captions (docs/captioning.md, "Numbers"): held-out attribute match of
encoder/decoder variants, decoder only, on cached frozen Lite0 features, the canonical caption of each training
image, one thread, seed 0; then greedy vs beam 3/5 on the test split.

    pixelforge data make shapes --task caption --out data/shapes-captions
    python -m benchmarks.caption_levers --data data/shapes-captions --enc base --dec base          # the control
    python -m benchmarks.caption_levers --data data/shapes-captions --enc s8c --dec ctx --pos 1    # the default

--enc base: stride-16 places (the fine map pooled); s8c: stride-8 places (the coarse map repeated). --dec ctx adds
the context logits; --pos 1 the places' x, y. A quick comparison loop (its own training loop, not the engine's),
so several variants fit in minutes; the default's own numbers come from `pixelforge train`.
"""
import sys, time, json, math, argparse
import numpy as np, torch
from torch import nn
from torch.nn import functional as F
from pixelforge.tasks.caption.task import load_images
from pixelforge.data.captions.reader import read_captions
from pixelforge.data.captions.tokenizer import Tokenizer
from pixelforge.models.captioner import build_captioner, AttentionDecoder
from pixelforge.metrics.captions import corpus_bleu, attribute_match

p = argparse.ArgumentParser()
p.add_argument("--data", default="data/shapes-captions")
p.add_argument("--cache", default="/tmp")
p.add_argument("--enc", default="base")  # base | s8 | s8c
p.add_argument("--dec", default="base")  # base | ctx
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--pen", type=float, default=0.02)
p.add_argument("--lr", type=float, default=3e-3)
p.add_argument("--size", type=int, default=128)
p.add_argument("--ls", type=float, default=0.1)
p.add_argument("--wd", type=float, default=0.0)
p.add_argument("--hdrop", type=float, default=0.0)
p.add_argument("--first", type=int, default=0)
p.add_argument("--beams", type=int, default=1)
p.add_argument("--pos", type=int, default=0)
a = p.parse_args()
torch.manual_seed(0)
src = read_captions(a.data)
split = {s: [i for i in src.images if i.split == s] for s in ("train", "val", "test")} if hasattr(src, "images") else {s: src.split(s) for s in ("train","val","test")}
tok = Tokenizer.fit([c for i in split["train"] for c in i.captions], 1)
model = build_captioner("tf_efficientnet_lite0", len(tok), "imagenet")
enc = model.encoder.eval()
cache = f"{a.cache}/caption-features-{a.enc}-{a.size}.pt"
try:
    feats = torch.load(cache)
except FileNotFoundError:
    feats = {}
    t0 = time.time()
    for s, imgs in split.items():
        out = []
        for k in range(0, len(imgs), 64):
            x = load_images([i.path for i in imgs[k:k+64]], a.size, enc.mean, enc.std)
            with torch.no_grad():
                fine, coarse = enc.body(x)
                if a.enc == "base":
                    f = enc(x)
                elif a.enc == "s8":  # stride 8 only + colour at stride 8
                    col = F.avg_pool2d(x, 8, ceil_mode=True)
                    f = torch.cat([fine, col], 1).flatten(2).transpose(1, 2)
                elif a.enc == "s8c":  # stride 8 + upsampled stride 16 + colour at 8
                    col = F.avg_pool2d(x, 8, ceil_mode=True)
                    up = F.interpolate(coarse, size=fine.shape[-2:], mode="nearest")
                    f = torch.cat([fine, up, col], 1).flatten(2).transpose(1, 2)
            out.append(f)
        feats[s] = torch.cat(out)
    torch.save(feats, cache)
    print("features", time.time() - t0, feats["train"].shape, flush=True)

class CtxDecoder(AttentionDecoder):
    def __init__(self, *args, hdrop=0.0, **kw):
        super().__init__(*args, **kw)
        self.ctx_out = nn.Linear(self.gate.out_features, self.vocab_size)
        self.hdrop = hdrop
    def step(self, features, projected, words, h, c):
        scores = self.att_score(torch.tanh(projected + self.att_hidden(h)[:, None])).squeeze(2)
        alpha = scores.softmax(1)
        raw = (alpha[:, :, None] * features).sum(1)
        context = torch.sigmoid(self.gate(h)) * raw
        h, c = self.lstm(torch.cat([self.embed(words), context], 1), (h, c))
        lm = self.out(self.dropout(torch.cat([h, context], 1)))
        return lm + self.ctx_out(self.dropout(raw)), h, c, alpha

if a.pos:
    for k in feats:
        B, N, _ = feats[k].shape
        g = int(round(N ** 0.5))
        lin = torch.linspace(-1, 1, g)
        yy, xx = torch.meshgrid(lin, lin, indexing="ij")
        pos = torch.stack([xx, yy], -1).reshape(1, N, 2).expand(B, N, 2)
        feats[k] = torch.cat([feats[k], pos], 2)
C = feats["train"].shape[2]
if a.dec == "base":
    dec = AttentionDecoder(len(tok), C)
else:
    dec = CtxDecoder(len(tok), C, hdrop=a.hdrop)
L = 26
def pairs(s, first=False):
    X, T, I = [], [], []
    for n, im in enumerate(split[s]):
        for c in (im.captions[:1] if first else im.captions):
            ids = tok.encode(c, 24)[:L]
            t = torch.full((L,), tok.pad); t[:len(ids)] = torch.tensor(ids)
            X.append(n); T.append(t)
    return torch.tensor(X), torch.stack(T)
Xi, T = pairs("train", bool(a.first))
torch.set_num_threads(1)
opt = torch.optim.Adam(dec.parameters(), lr=a.lr, weight_decay=a.wd)
steps = a.epochs * math.ceil(len(T) / 64); warm = int(0.3 * steps / a.epochs)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))

def evaluate(s, beam=1):
    dec.eval()
    hyps = []
    with torch.no_grad():
        for k in range(0, len(split[s]), 256):
            out, _ = dec.greedy(feats[s][k:k+256], tok.start, tok.end, 25)
            hyps += [tok.decode(r) for r in out.tolist()]
    refs = [i.captions for i in split[s]]; objs = [i.objects for i in split[s]]
    b = corpus_bleu(hyps, refs)
    dec.train()
    return b["bleu4"], attribute_match(hyps, objs), hyps

t0 = time.process_time(); w0 = time.time()
for ep in range(a.epochs):
    perm = torch.randperm(len(T))
    dec.train()
    for k in range(0, len(T), 64):
        idx = perm[k:k+64]
        tk = T[idx]; n = int((tk != tok.pad).sum(1).max())
        tk = tk[:, :n]
        logits, alphas = dec(feats["train"][Xi[idx]], tk)
        tg = tk[:, 1:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tg.reshape(-1), ignore_index=tok.pad, label_smoothing=a.ls)
        valid = (tg != tok.pad).float()[:, :, None]
        pen = ((1 - (alphas * valid).sum(1)) ** 2).mean()
        opt.zero_grad(); (loss + a.pen * pen).backward()
        nn.utils.clip_grad_norm_(dec.parameters(), 5.0); opt.step(); sched.step()
    vb, va, _ = evaluate("val"); tb, ta, hy = evaluate("test")
    print(f"ep{ep+1} loss {loss.item():.3f} val b4 {vb:.1f} am {va:.3f} | test b4 {tb:.1f} am {ta:.3f}  cpu {time.process_time()-t0:.0f}s wall {time.time()-w0:.0f}s", flush=True)
errs = [(h, [(o['colour'], o['shape']) for o in i.objects]) for h, i in zip(hy, split["test"])]
from pixelforge.data.captions.shapes import attribute_pairs
bad = [e for e in errs if attribute_pairs(e[0]) != sorted(e[1])]
for e in bad[:8]: print("  ", e)
from pixelforge.deploy.runtime.caption_search import beam_search, log_softmax
dec.eval()
def beam_eval(s, beam, lp, limit=300):
    hyps = []
    with torch.no_grad():
        for n in range(min(limit, len(split[s]))):
            init = dec.init_state(feats[s][n:n+1])
            def step(words, state):
                f, pr, h, c = (torch.from_numpy(x) for x in state)
                lg, h, c, al = dec.step(f, pr, torch.from_numpy(words), h, c)
                return log_softmax(lg.numpy()), (state[0], state[1], h.numpy(), c.numpy()), al.numpy()
            hy = beam_search(step, tuple(t.numpy() for t in init), tok.start, tok.end, beam, 25, lp)
            hyps.append(" ".join(tok.vocab[t] for t in hy.tokens if t != tok.end))
    refs = [i.captions for i in split[s]][:len(hyps)]; objs = [i.objects for i in split[s]][:len(hyps)]
    b = corpus_bleu(hyps, refs)
    return [round(b[f"bleu{k}"], 1) for k in range(1, 5)], attribute_match(hyps, objs)
for beam, lp in ((1, 0.0), (3, 0.0), (5, 0.0), (3, 0.6)) if a.beams else ():
    print("beam", beam, "lp", lp, *beam_eval("test", beam, lp), flush=True)
