"""The CLIP runtime: zero-shot labels from two ONNX models and numpy, no torch.

A clip package (tasks/clip/export.py) holds

    image_encoder.onnx   image [B, 3, S, S] -> normalised embedding [B, D]
    text_encoder.onnx    token ids [T, L] (int64) -> normalised embedding [T, D]
    tokenizer.json       the training vocabulary (data/captions/tokenizer.py)
    preprocess.json      size, mean, std: resize the short side (bicubic), centre crop, normalise, as open_clip's
                         inference transform
    package.json         "task": "clip", the prompt templates, the context length, the temperature; the image
                         encoders under "models" and the text encoders under "text_models" by precision (fp32, and
                         fp16 / int8 when exported with them: `--precision` picks both)

Labels are given at prediction time (`pixelforge zeroshot IMAGES --run PACKAGE --labels ...`): each label's
embedding is the renormalised mean of its prompts' normalised embeddings, as models/zeroshot.py does over PyTorch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.data.captions.tokenizer import Tokenizer
from pixelforge.deploy.runtime.dense import DenseRuntime
from pixelforge.deploy.runtime.session import onnx_session
from pixelforge.errors import PixelforgeError


def clip_input(image, size: int, mean, std) -> np.ndarray:
    """[1, 3, S, S] float32: torchvision's Resize(S) (short side, bicubic, PIL) and CenterCrop(S), then normalise."""
    from PIL import Image

    image = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    image = image.convert("RGB")
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if width <= height else (new_long, size)
    image = image.resize((new_w, new_h), Image.BICUBIC)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    pixels = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    pixels = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return pixels.transpose(2, 0, 1)[None].astype(np.float32)


class ClipRuntime(DenseRuntime):
    task = "clip"
    title = "Zero-shot classification (CLIP)"
    # An upload carries no class names to choose among (the server's query options have none).
    serve_refusal = ("{package}: a clip package labels images by class names given with them, which `pixelforge "
                     "serve` does not take: pixelforge zeroshot IMAGES --run {package} --labels \"a,b\"")

    def __init__(self, package, precision=None, threads=None, providers=None, spin=True, loaders=None):
        super().__init__(package, precision, threads, providers, spin, loaders)
        folder = Path(self.package.folder)
        manifest = self.package.manifest  # "text_models" by precision; a package of before --fp16/--int8: fp32 only
        text = manifest.get("text_models", {}).get(self.precision, manifest["text_model"])
        self.text = onnx_session(folder / text, threads, providers, spin)
        self.tokenizer = Tokenizer.load(folder / "tokenizer.json")
        self.templates = list(self.package.manifest["templates"])

    def colors(self) -> dict[str, str]:
        return {}

    def tokens(self, texts: list[str]) -> np.ndarray:
        length = self.package.manifest["context_length"]
        out = np.full((len(texts), length), self.tokenizer.pad, dtype=np.int64)
        for row, text in enumerate(texts):
            ids = self.tokenizer.encode(text, length - 2)
            out[row, :len(ids)] = ids
        return out

    def image_embeddings(self, images: list) -> np.ndarray:
        pre = self.package.preprocess
        return np.concatenate([self.session.run(None, {"image": clip_input(i, pre["size"], pre["mean"], pre["std"])})[0]
                               for i in images])

    def class_embeddings(self, labels: list[str], templates: list[str] | None = None) -> np.ndarray:
        """[D, C]: per label, the renormalised mean of its prompts' normalised embeddings."""
        templates = templates or self.templates
        columns = []
        for label in labels:
            embedded = self.text.run(None, {"tokens": self.tokens([t.format(label) for t in templates])})[0]
            mean = embedded.mean(0)
            columns.append(mean / np.linalg.norm(mean))
        return np.stack(columns, 1)

    def scores(self, images: list, labels: list[str], templates: list[str] | None = None,
               classes: np.ndarray | None = None) -> np.ndarray:
        """[N, C] probabilities: softmax of the trained temperature times the cosine similarities (`classes`: the
        labels' `class_embeddings` when the caller has them already)."""
        if classes is None:
            classes = self.class_embeddings(labels, templates)
        logits = self.package.manifest["logit_scale"] * self.image_embeddings(images) @ classes
        logits -= logits.max(1, keepdims=True)
        return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)

    def predict_images(self, images: list) -> list:
        raise PixelforgeError(f"{self.package.folder}: a clip package labels images by class names given with "
                              f"them: pixelforge zeroshot IMAGES --run {self.package.folder} --labels \"a,b\"")

    def predict_files(self, paths: list, out=None, **options) -> list[dict]:
        return self.predict_images([])

    def predict_frame(self, frame, **options) -> dict:
        raise PixelforgeError(f"{self.package.folder}: a clip package labels images by class names given with them, "
                              f"which `pixelforge video` does not take: pixelforge zeroshot IMAGES --run "
                              f"{self.package.folder} --labels \"a,b\"")
