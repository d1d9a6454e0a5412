"""The captioning runtime: two ONNX models and beam search in numpy, no torch.

A caption package (tasks/caption/export.py) holds

    encoder.onnx        image [1, 3, S, S] -> features [1, N, C], projected [1, N, A], h [1, H], c [1, H]
    decoder_step.onnx   features [K, N, C], projected [K, N, A], words [K], h [K, H], c [K, H]
                        -> logits [K, V], h, c, alpha [K, N]          (K = live beams, a dynamic axis)
    tokenizer.json      the training vocabulary (data/captions/tokenizer.py)
    preprocess.json     size, mean, std: resize whole, scale to [0, 1], normalise (caption_search.caption_input)
    package.json        "task": "caption", beam width, length penalty, maximum length; the encoders under "models"
                        and the decoder steps under "decoder_models" by precision (fp32, and fp16 / int8 when
                        exported with them: `--precision` picks both)

and decodes with caption_search.beam_search, the same search `pixelforge predict RUN` runs over PyTorch.
Answers carry each word's attention over the encoder's g x g grid ("attention": [words][g][g]), which the web page
draws over the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.data.captions.tokenizer import Tokenizer
from pixelforge.deploy.runtime.caption_search import attention_grid, beam_search, caption_input, log_softmax
from pixelforge.deploy.runtime.dense import DenseRuntime
from pixelforge.deploy.runtime.preprocess import frame_to_image
from pixelforge.deploy.runtime.session import onnx_session


class CaptionRuntime(DenseRuntime):
    task = "caption"
    title = "Image captioning"
    hidden_settings = ("top_k", "max_batch", "max_wait_ms", "score_threshold")

    def __init__(self, package, precision=None, threads=None, providers=None, spin=True, loaders=None):
        super().__init__(package, precision, threads, providers, spin, loaders)
        folder = Path(self.package.folder)
        manifest = self.package.manifest  # "decoder_models" by precision; a package of before --fp16/--int8: fp32 only
        decoder = manifest.get("decoder_models", {}).get(self.precision, manifest["decoder_model"])
        self.decoder = onnx_session(folder / decoder, threads, providers, spin)
        self.tokenizer = Tokenizer.load(folder / "tokenizer.json")

    def colors(self) -> dict[str, str]:
        return {}

    def caption(self, image, beam: int | None = None) -> dict:
        """{"caption", "tokens", "score" (log p), "alphas" [words + <end>] of [N]} for one PIL image or array."""
        manifest, pre = self.package.manifest, self.package.preprocess
        x = caption_input(image, pre["size"], pre["mean"], pre["std"])
        state = tuple(self.session.run(None, {"image": x}))

        def step(words: np.ndarray, state: tuple):
            features, projected, h, c = state
            logits, h, c, alpha = self.decoder.run(None, {"features": features, "projected": projected,
                                                          "words": words, "h": h, "c": c})
            return log_softmax(logits), (features, projected, h, c), alpha

        tok = self.tokenizer
        hyp = beam_search(step, state, tok.start, tok.end, beam or manifest["beam"], manifest["max_len"],
                          manifest["length_penalty"])
        words = [tok.vocab[t] for t in hyp.tokens if t != tok.end]
        return {"caption": " ".join(words), "tokens": words, "score": round(float(hyp.log_prob), 6),
                "alphas": hyp.alphas}

    def predict_images(self, images: list) -> list[dict]:
        return [self.caption(image) for image in images]

    def predict_files(self, paths: list, out: str | Path | None = None, *, progress=None, beam: int | None = None,
                      **options) -> list[dict]:
        """[{path, caption, tokens, score}] per image; unreadable files get {path, error}. Nothing is written."""
        from pixelforge.data.images import load_rgb, read_each

        self.reject_options("predict", options)
        results = []
        for path, image in read_each(paths, load_rgb, results):
            answer = self.caption(image, beam)
            results.append({"path": str(path), **{k: answer[k] for k in ("caption", "tokens", "score")}})
            if progress is not None:
                progress(1)
        return self.with_common_keys(results)

    @staticmethod
    def describe_result(result: dict) -> str:
        return result.get("error") or f"{result['caption']}  (log p {result['score']:.3f})"

    def answer(self, image, output: dict, **options) -> dict:
        """{"task": "caption", "width", "height", "caption", "tokens", "score", "attention": [word][g][g], "grid": g}."""
        grids = attention_grid(output["alphas"])
        width, height = image.size
        return {"task": "caption", "width": width, "height": height, "caption": output["caption"], "tokens": output["tokens"],
                "score": output["score"], "attention": grids[: len(output["tokens"])],
                "grid": len(grids[0]) if grids else 0}

    def predict_frame(self, frame: np.ndarray, **options) -> dict:
        return self.caption(frame_to_image(frame))

    def describe(self, prediction: dict) -> str:
        return prediction["caption"]
