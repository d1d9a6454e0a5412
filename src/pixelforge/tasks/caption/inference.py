"""A trained captioning run for inference: rebuild the model, decode images with greedy or beam search (the numpy
search of deploy/runtime/caption_search.py over the PyTorch decoder step), and write COCO results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pixelforge.data.captions.tokenizer import Tokenizer
from pixelforge.deploy.runtime.caption_search import Hypothesis, beam_search, caption_input, log_softmax
from pixelforge.errors import PixelforgeError


@dataclass
class CaptionRun:
    run_dir: Path
    config: object
    tokenizer: Tokenizer
    model: torch.nn.Module
    mean: list[float]
    std: list[float]

    def input(self, image) -> torch.Tensor:
        return torch.from_numpy(caption_input(image, self.config.img_size, self.mean, self.std))

    @torch.inference_mode()
    def decode(self, image, beam: int | None = None, length_penalty: float | None = None) -> Hypothesis:
        """One image's caption: beam search of width `beam` (default the run's; 1 is greedy)."""
        decoder = self.model.decoder
        initial = decoder.init_state(self.model.encoder(self.input(image)))

        def step(words: np.ndarray, state: tuple):
            feats, projected, h, c = (torch.from_numpy(s) for s in state)
            logits, h, c, alpha = decoder.step(feats, projected, torch.from_numpy(words), h, c)
            return log_softmax(logits.numpy()), (state[0], state[1], h.numpy(), c.numpy()), alpha.numpy()

        tok = self.tokenizer
        return beam_search(step, tuple(t.numpy() for t in initial), tok.start, tok.end,
                           beam or self.config.beam, self.config.max_caption_words + 1,
                           self.config.length_penalty if length_penalty is None else length_penalty)

    def words(self, hyp: Hypothesis) -> list[str]:
        return [self.tokenizer.vocab[t] for t in hyp.tokens if t != self.tokenizer.end]


def load_caption_run(run_dir: str | Path, checkpoint: str = "best.ckpt") -> CaptionRun:
    from pixelforge.models.captioner import build_captioner
    from pixelforge.tasks.common.run import read_run

    run, cfg, _, state = read_run(run_dir, "caption", checkpoint)
    if (run / "tokenizer.json").exists():
        tokenizer = Tokenizer.load(run / "tokenizer.json")
    elif "vocab" in state:
        tokenizer = Tokenizer(state["vocab"], state.get("min_count", 1))
    else:
        raise PixelforgeError(f"{run}: no tokenizer.json and no vocabulary in the checkpoint")
    if "decoder_format" not in state:
        # Runs saved before round three's decoder options: their config.yaml does not name them, and the
        # LSTM and word layer of those runs read the attended features (SAT's decoder).
        cfg = cfg.model_copy(update={"lstm_input": "context", "deep_output": "h+context", "init_state": "mean",
                                         "attention": "content"})
    if "decoder.att_word.weight" not in state["model"]:
        # Runs saved before round five's attention query (their config.yaml does not name it) attend from h alone.
        cfg = cfg.model_copy(update={"attention_query": "h"})
    model = build_captioner(cfg.model, len(tokenizer), "none", cfg.embed_dim, cfg.hidden_dim, cfg.attention_dim,
                            cfg.decoder_dropout, cfg.feature_stride, cfg.context_logits, cfg.init_state,
                            cfg.deep_output, cfg.lstm_input, cfg.attention, cfg.attention_query)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        raise PixelforgeError(f"{run}: its checkpoint does not fit this version's caption model (a run of an "
                              f"earlier pixelforge); train it again") from None
    return CaptionRun(run, cfg, tokenizer, model.eval(), list(state["mean"]), list(state["std"]))


def predict_captions(run_dir, paths: list, beam: int | None = None) -> list[dict]:
    """[{path, caption, tokens, score}] per image (files, folders, globs); unreadable ones get {path, error}."""
    from pixelforge.data.images import load_rgb, read_each
    from pixelforge.data.sources import collect_paths

    files = collect_paths(list(paths))
    if not files:  # the package's line (and every task's predict): it printed nothing and exited 0
        raise PixelforgeError(f"no images found in {', '.join(map(str, paths))}")
    run = load_caption_run(run_dir)
    results = []
    for path, image in read_each(files, load_rgb, results):
        hyp = run.decode(image, beam)
        words = run.words(hyp)
        results.append({"path": str(path), "caption": " ".join(words), "tokens": words,
                        "score": round(float(hyp.log_prob), 6)})
    return results
