"""Gatys vs fast network vs arbitrary styles: seconds and losses side by side, and the grid to look at.

For each unseen photo (scikit-image's) at SIZE x SIZE: optimisation (`--steps` L-BFGS evaluations), the fast
network's package through ONNX Runtime, and Magenta's arbitrary network, all scored with the same loss network.
Prints one JSON line per photo and method, then the ratios the docs quote:

    speed  = Gatys seconds / fast seconds (wall and process CPU)
    loss   = fast (content_weight * content + style_weight * style) / Gatys's, mean over photos

Each row also gives the style loss layer by layer (`style_by_layer`, the loss network's style layers in order,
shallow to deep): where a method falls short of optimisation.

`--feature-transform` is the loss definition (lossnet.py: `none`, or `softmax`, SWAG's smoothing) that the Gatys
run optimises and the main columns score, by default the package's own (package.json). Every row is also scored
under both definitions (`by_definition`), and the summary gives the fast / Gatys ratio under each, for the same
images.

    PYTHONPATH=src python benchmarks/style_transfer.py PACKAGE OUT [--size 512] [--steps 300] [--photos 4]
    [--feature-transform none|softmax] [--run RUN]  (the grid is also copied to RUN/comparison.png and the run's
    report rewritten)

The machine may be shared: process CPU seconds are printed beside wall seconds (CPU / 2 ~ a quiet 2-core wall).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parent))
from style_images import write_images  # noqa: E402

from pixelforge.tasks.style import methods  # noqa: E402
from pixelforge.tasks.style.gatys import Weights  # noqa: E402
from pixelforge.tasks.style.images import read_image, to_pil  # noqa: E402
from pixelforge.tasks.style.lossnet import FEATURE_TRANSFORMS, build_loss_network, gram_matrix, relative_mse  # noqa: E402,E501


def timed(function, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def cached(stem: Path, call):
    """Gatys and arbitrary results are kept in OUT/cache (image + times), so a rerun with a newly trained package
    only runs the fast network again."""
    from pixelforge.tasks.style.images import to_tensor

    meta = stem.with_suffix(".json")
    if meta.is_file():
        saved = json.loads(meta.read_text())
        result = methods.Stylized(to_tensor(Image.open(stem.with_suffix(".png"))), saved["seconds"], saved["method"])
        return result, saved["wall"], saved["cpu"]
    result, wall, cpu = timed(call)
    stem.parent.mkdir(parents=True, exist_ok=True)
    to_pil(result.image).save(stem.with_suffix(".png"))
    meta.write_text(json.dumps({"seconds": result.seconds, "method": result.method, "wall": wall, "cpu": cpu,
                                "evaluations": len(result.history)}))
    return result, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("package")
    parser.add_argument("out")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--run", default=None)
    parser.add_argument("--feature-transform", choices=FEATURE_TRANSFORMS, default=None)
    args = parser.parse_args()
    out = Path(args.out)
    style_path, photos = write_images(out / "images")
    package_style = Path(args.package) / "style.png"
    style_path = package_style if package_style.is_file() else style_path
    transform = args.feature_transform or (methods.trained_feature_transform(args.package)
                                           if args.package != "-" else "none")
    nets = {name: build_loss_network("lite0", feature_transform=name) for name in FEATURE_TRANSFORMS}
    lossnet, weights = nets[transform], Weights()
    rows, tiles = [], []
    for photo in photos[:args.photos]:
        content = read_image(photo, args.size)
        content = content[..., :args.size, :args.size]
        style = read_image(style_path, args.size)
        results = {}
        for name, call in (("gatys", lambda: methods.gatys(lossnet, content, style, steps=args.steps, weights=weights)),
                           ("fast", lambda: methods.fast(args.package, content)[0]),
                           ("arbitrary", lambda: methods.arbitrary(content, style))):
            if name == "fast" and args.package == "-":
                continue
            # The plain definition keeps the earlier rounds' cache names; the Gatys image depends on the definition.
            suffix = f"-{transform}" if name == "gatys" and transform != "none" else ""
            cache = out / "cache" / f"{photo.stem}-{name}-{args.size}-{args.steps}{suffix}"
            result, wall, cpu = cached(cache, call) if name != "fast" else timed(call)
            methods.score(result, lossnet, content, style, weights)
            objective = weights.content * result.losses["content"] + weights.style * result.losses["style"]
            results[name] = (result, objective)
            row = {"photo": photo.stem, "method": name, "size": list(content.shape[-2:]), "seconds": round(result.seconds, 3),
                   "call_wall_s": round(wall, 2), "call_cpu_s": round(cpu, 2), "content": result.losses["content"],
                   "style": result.losses["style"], "content+style": objective,
                   "style_by_layer": style_by_layer(lossnet, result.image, style), "feature_transform": transform,
                   "by_definition": {other: objective_under(net, result.image, content, style, weights)
                                     for other, net in nets.items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)
        tiles.append([("content", content), ("style", style)] + [
            (f"{name} {r.seconds:.2f}s\nc {r.losses['content']:.3f} s {r.losses['style']:.3f} = {obj:.3f}", r.image)
            for name, (r, obj) in results.items()])
    if args.package == "-":
        return
    summary = {**ratios(rows), "fast_over_gatys_loss_by_definition": ratios_by_definition(rows),
               "feature_transform": transform, "weights": {"content": weights.content, "style": weights.style, "tv": weights.tv},
               "gatys_steps": args.steps}
    print(json.dumps(summary))
    (out / "style-transfer.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    grid = draw_grid(tiles, out / "style-transfer-grid.png")
    if args.run:
        from pixelforge.tasks.style.report import write_style_report

        shutil.copyfile(grid, Path(args.run) / "comparison.png")
        write_style_report(Path(args.run))
    print(grid)


@torch.no_grad()
def style_by_layer(lossnet, image, style) -> list[float]:
    """Each style layer's relative Gram error (the style loss is their mean)."""
    ours, theirs = lossnet(image), lossnet(style)
    return [round(float(relative_mse(gram_matrix(ours[k]), gram_matrix(theirs[k]))), 4) for k in lossnet.style_layers]


def objective_under(lossnet, image, content, style, weights) -> dict:
    """c, s and c + 10 s (the weights' objective) of `image` under `lossnet`'s loss definition."""
    from pixelforge.tasks.style.gatys import measure

    losses = measure(lossnet, image, content, style, weights)
    return {"c": round(losses["content"], 4), "s": round(losses["style"], 5),
            "c+10s": round(weights.content * losses["content"] + weights.style * losses["style"], 4)}


def ratios_by_definition(rows: list[dict]) -> dict:
    """{definition: {photo: fast / Gatys c + 10 s}}, both images scored under that definition."""
    by = {(r["photo"], r["method"]): r for r in rows}
    photos = sorted({r["photo"] for r in rows})
    return {name: {p: round(by[p, "fast"]["by_definition"][name]["c+10s"]
                             / by[p, "gatys"]["by_definition"][name]["c+10s"], 3) for p in photos}
            for name in FEATURE_TRANSFORMS}


def ratios(rows: list[dict]) -> dict:
    by = {(r["photo"], r["method"]): r for r in rows}
    photos = sorted({r["photo"] for r in rows})
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    return {
        "gatys_over_fast_seconds": mean([by[p, "gatys"]["seconds"] / by[p, "fast"]["seconds"] for p in photos]),
        "gatys_over_fast_cpu": mean([by[p, "gatys"]["call_cpu_s"] / max(by[p, "fast"]["call_cpu_s"], 1e-3) for p in photos]),
        "fast_seconds_mean": mean([by[p, "fast"]["seconds"] for p in photos]),
        "gatys_seconds_mean": mean([by[p, "gatys"]["seconds"] for p in photos]),
        "arbitrary_seconds_mean": mean([by[p, "arbitrary"]["seconds"] for p in photos]),
        "fast_over_gatys_loss": mean([by[p, "fast"]["content+style"] / by[p, "gatys"]["content+style"] for p in photos]),
        "arbitrary_over_gatys_loss": mean([by[p, "arbitrary"]["content+style"] / by[p, "gatys"]["content+style"]
                                           for p in photos]),
    }


def draw_grid(rows: list[list], path: Path, tile: int = 256) -> Path:
    band = 30
    columns = max(len(r) for r in rows)
    sheet = Image.new("RGB", (columns * tile, len(rows) * (tile + band)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, row in enumerate(rows):
        for i, (label, tensor) in enumerate(row):
            image = to_pil(tensor)
            image.thumbnail((tile, tile))
            x, y = i * tile, j * (tile + band)
            sheet.paste(image, (x, y + band))
            draw.multiline_text((x + 3, y + 1), label, fill="black", spacing=1)
    sheet.save(path)
    return path


if __name__ == "__main__":
    main()
