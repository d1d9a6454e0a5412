"""`pixelforge explain RUN IMAGES` for a captioning run: one attention strip per image (the image, then each
generated word with its attention weights upsampled over the image)."""

from __future__ import annotations

from pathlib import Path

from pixelforge.errors import PixelforgeError


def explain_captions(run_dir, images: list, out, beam: int | None = None, **options) -> list[dict]:
    """Write OUT/<image stem>.png per image; returns [{path, png, caption}] ({path, error} for unreadable files)."""
    from pixelforge.data.images import ImageReadError, load_rgb
    from pixelforge.data.sources import collect_paths
    from pixelforge.tasks.caption.inference import load_caption_run
    from pixelforge.viz.captions import plot_attention_strips

    files = collect_paths(list(images))
    if not files:
        raise PixelforgeError(f"no images found in {', '.join(map(str, images))}")
    run = load_caption_run(run_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, taken = [], set()
    for file in files:
        try:
            pixels = load_rgb(file)
        except ImageReadError as exc:
            rows.append({"path": str(file), "error": str(exc)})
            continue
        hyp = run.decode(pixels, beam)
        words = run.words(hyp)
        stem, n = Path(file).stem, 1
        while f"{stem}.png" in taken:
            n += 1
            stem = f"{Path(file).stem}-{n}"
        taken.add(f"{stem}.png")
        png = plot_attention_strips([(pixels, words, hyp.alphas)], out / f"{stem}.png", max_words=24)
        rows.append({"path": str(file), "png": str(png), "caption": " ".join(words)})
    return rows
