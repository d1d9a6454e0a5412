"""`pixelforge.predict`: top-k labels for image files, folders and globs, from a trained run."""

from __future__ import annotations

from pathlib import Path

from pixelforge.data.sources import Sample, collect_paths
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.classify.inference import load_run, run_inference


def predict(run_dir: str | Path, paths: list[str | Path], top_k: int = 1, batch_size: int = 64) -> list[dict]:
    """One dict per readable image: `path` (as found), `label`, `score`, and `top_k` [{label, score}, ...].

    Example:
        >>> predict("runs/digits", ["digit.png"], top_k=3)[0]["label"]  # doctest: +SKIP
        '7'
    """
    files = collect_paths(list(paths))
    if not files:
        raise PixelforgeError(f"no images found in {', '.join(map(str, paths))}")
    loaded = load_run(run_dir)
    # The label is unknown at prediction time; the first class name is a placeholder the dataset needs.
    given = {Path(p): p for p in files}
    logits, kept, unreadable = run_inference(loaded, [Sample(Path(p), loaded.classes[0]) for p in files], batch_size)
    probs = logits.softmax(1)
    k = min(top_k, len(loaded.classes))
    results = []
    for sample, row in zip(kept, probs):
        scores, indices = row.topk(k)
        ranked = [{"label": loaded.classes[int(i)], "score": round(float(s), 6)} for s, i in zip(scores, indices)]
        results.append({"path": given[sample.path], "label": ranked[0]["label"], "score": ranked[0]["score"], "top_k": ranked})
    for message in unreadable:
        results.append({"path": message.split(": ", 1)[0], "label": None, "score": None, "error": message})
    return results
