"""Round-five decoding screen (docs/captioning.md, "Round five"): BLEU-1..4 and attribute match of decodings of
one trained captioning run on val (seen pairs) and test (held-out pairs), without retraining.

    python -m benchmarks.caption_decoding --run runs/caption-shapes --data data/shapes-captions

Each image's encoder state is computed once; every decoding then runs the run's own PyTorch decoder step under the
numpy search of deploy/runtime/caption_search.py. Variants (`--variants`, comma-separated):
    greedy          beam 1
    beamK           beam search, width K, length penalty 0
    beamK-lpA       with GNMT length penalty A
    firstN-beamK    greedy for the first N words (the caption's wording), then beam search of width K
    ctxW[-beamK]    the context logits (what is looked at) weighted W against the word layer's (what the words
                    said so far expect): W > 1 leans each word on the image
    gateP-beamK     beam search that branches only where the model's top word has probability below P, and
                    otherwise follows that word
Choose on val (its pairs are seen in training); the test line of each variant is for the record.

`--looks` also prints, for greedy captions, how much attention each shape word puts on the object it names (the
places within the object's radius + 4 px), in scenes of two objects of the same size and in the others: round
four's errors were shape words said while the attention was still split between two objects.
"""
import argparse
import time

import numpy as np
import torch

from pixelforge.data.captions.reader import read_captions
from pixelforge.data.images import load_rgb
from pixelforge.deploy.runtime.caption_search import beam_search, log_softmax
from pixelforge.metrics.captions import attribute_match, corpus_bleu
from pixelforge.tasks.caption.inference import load_caption_run

p = argparse.ArgumentParser()
p.add_argument("--run", default="runs/caption-shapes")
p.add_argument("--data", default="data/shapes-captions")
p.add_argument("--splits", default="val,test")
p.add_argument("--variants", default="greedy,beam2,beam3,first1-beam2,first1-beam3,gate0.9-beam3,gate0.7-beam3")
p.add_argument("--checkpoint", default="best.ckpt")
p.add_argument("--looks", action="store_true")
a = p.parse_args()
torch.set_num_threads(1)
torch.set_grad_enabled(False)
run = load_caption_run(a.run, a.checkpoint)
dec, tok = run.model.decoder, run.tokenizer
source = read_captions(a.data)


def torch_step(words, state, weight=1.0):
    feats, projected, h, c = (torch.from_numpy(s) for s in state)
    if weight == 1.0:
        logits, h, c, alpha = dec.step(feats, projected, torch.from_numpy(words), h, c)
    else:  # the context logits weighted: what is seen against what the words said so far expect
        logits, h, c, alpha = guided_step(feats, projected, torch.from_numpy(words), h, c, weight)
    return log_softmax(logits.numpy()), (state[0], state[1], h.numpy(), c.numpy()), alpha.numpy()


def guided_step(features, projected, words, h, c, weight):
    scores = dec.att_score(torch.tanh(projected + dec.att_hidden(h)[:, None])).squeeze(2)
    alpha = scores.softmax(1)
    attended = (alpha[:, :, None] * features).sum(1)
    seen = attended[:, -2:] if dec.lstm_input == "where" else torch.sigmoid(dec.gate(h)) * attended
    h, c = dec.lstm(torch.cat([dec.embed(words), seen], 1), (h, c))
    return dec.out(h) + weight * dec.context_out(attended), h, c, alpha


def shaped(variant: str):
    """(beam, length penalty, step) for a variant name (module docstring)."""
    lp, first, gate, weight = 0.0, 0, None, 1.0
    parts = variant.split("-")
    for part in parts:
        if part.startswith("lp"):
            lp = float(part[2:])
        elif part.startswith("first"):
            first = int(part[5:])
        elif part.startswith("ctx"):
            weight = float(part[3:])
        elif part.startswith("gate"):
            gate = float(part[4:])
    beam = int(next((x for x in parts if x.startswith("beam")), "beam1")[4:])
    calls = {"n": 0}

    def step(words, state):
        logp, state, alpha = torch_step(words, state, weight)
        position = calls["n"]
        calls["n"] += 1
        top = logp.argmax(1)
        force = position < first
        for k in range(len(logp)):
            if force or (gate is not None and np.exp(logp[k, top[k]]) >= gate):
                keep = logp[k, top[k]]
                logp[k] = -np.inf
                logp[k, top[k]] = keep
        return logp, state, alpha

    def reset():
        calls["n"] = 0
    return beam, lp, step, reset


states = {}
with torch.inference_mode():
    for split in a.splits.split(","):
        images = source.split(split)
        states[split] = [(i, tuple(t.numpy() for t in dec.init_state(run.model.encoder(run.input(load_rgb(i.path))))))
                         for i in images]
    for variant in a.variants.split(","):
        beam, lp, step, reset = shaped(variant)
        line = [f"{variant:>16}"]
        cpu = time.process_time()
        for split, rows in states.items():
            hyps = []
            for image, state in rows:
                reset()
                hyp = beam_search(step, state, tok.start, tok.end, beam, run.config.max_caption_words + 1, lp)
                hyps.append(" ".join(tok.vocab[t] for t in hyp.tokens if t != tok.end))
            b = corpus_bleu(hyps, [i.captions for i, _ in rows])
            m = attribute_match(hyps, [i.objects for i, _ in rows])
            starts = sum(h.startswith("there") for h in hyps)
            line.append(f"{split} BLEU-1..4 " + " / ".join(f"{b[f'bleu{n}']:.1f}" for n in range(1, 5))
                        + f"  attr {100 * m:.1f}%  'there..' {starts}")
        print(" | ".join(line) + f"  ({time.process_time() - cpu:.0f} CPU s)", flush=True)


def mass_on_object(alpha: np.ndarray, obj: dict, size: int = 128) -> float:
    side = int(round(np.sqrt(alpha.size)))
    centres = (np.arange(side) + 0.5) * size / side
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    inside = (xs - obj["x"]) ** 2 + (ys - obj["y"]) ** 2 <= (obj["r"] + 4) ** 2
    return float(alpha.reshape(side, side)[inside].sum())


if a.looks:
    from pixelforge.data.captions.shapes import COLOURS, SHAPE_CLASSES

    for split, rows in states.items():
        groups = {"2 objects, same size": [], "others": []}
        for image, state in rows:
            hyp = beam_search(torch_step, state, tok.start, tok.end, 1, run.config.max_caption_words + 1)
            said = [tok.vocab[t] for t in hyp.tokens]
            same = len(image.objects) == 2 and image.objects[0]["size"] == image.objects[1]["size"]
            for k, word in enumerate(said):
                named = [o for o in image.objects if o["shape"] == word and k and o["colour"] == said[k - 1]]
                if word in SHAPE_CLASSES and len(named) == 1 and said[k - 1] in COLOURS:
                    groups["2 objects, same size" if same else "others"].append(mass_on_object(hyp.alphas[k], named[0]))
        print(f"{split}: attention on the named object at its shape word: " + ", ".join(
            f"{name} {np.mean(v):.2f} (n={len(v)})" for name, v in groups.items()))
