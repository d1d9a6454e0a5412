"""Lever L22's exactness on real photos: the report's CAM through the cached ONNX graph against eager Grad-CAM.

    python -m pixelforge train --data ../shared/data/hymenoptera/train --out RUN   # the default run, once
    python -m benchmarks.cam_parity RUN

Six of the run's validation photos (every eighth): the largest difference between the two heat maps (both in
[0, 1]) at Grad-CAM's layer, and the faithfulness scores (deletion/insertion, 6 steps, 3 images) that the eager
model and the graph give for them, side by side. The graph is the one `$PIXELFORGE_HOME/onnx-features/` holds
for the run's backbone; without one (or without its pooled map) the script says so.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    from pixelforge.data.dataset import ImageDataset
    from pixelforge.explain.cam import find_target_layer, grad_cam, linear_head_cam
    from pixelforge.explain.faithfulness import faithfulness_summary
    from pixelforge.explain.gallery import GraphClassifier
    from pixelforge.explain.methods import allow_autograd
    from pixelforge.tasks.classify.evaluate import gallery_graph, select_samples
    from pixelforge.tasks.classify.inference import load_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a classification run folder trained with the default (linear) strategy")
    args = parser.parse_args()
    loaded = load_run(args.run)
    graph = gallery_graph(loaded)
    if graph is None:
        raise SystemExit(f"{args.run}: no cached feature graph with a pooled map for this backbone and size")
    samples = select_samples(loaded, None, None)[0][::8][:6]
    dataset = ImageDataset(samples, {c: i for i, c in enumerate(loaded.classes)}, loaded.short_side, loaded.transform)
    x = torch.stack([loaded.transform(dataset.pixels(k)) for k in range(len(samples))])
    model = allow_autograd(loaded.model.eval())
    with torch.no_grad():
        preds = model(x).argmax(1).tolist()
        ort_maps = graph.features_and_maps(x)[1]
    name, layer = find_target_layer(model, x.shape[-1])
    eager = grad_cam(model, x, preds, layer)
    fast = linear_head_cam(ort_maps, model.head[-1].weight, preds, x.shape[-2:])
    print(f"{len(samples)} validation photos, layer {name}: max |CAM (ONNX Runtime) - Grad-CAM (eager)| = "
          f"{np.abs(fast - eager).max():.2e}")
    scores = {"eager": faithfulness_summary(model, x[:3], eager[:3], preds[:3], 6),
              "onnxruntime": faithfulness_summary(GraphClassifier(graph, model.head).eval(), x[:3], fast[:3],
                                                  preds[:3], 6)}
    print(f"{'faithfulness':<22} {'eager':>8} {'onnxruntime':>12}")
    for key in ("deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc"):
        print(f"{key:<22} {scores['eager'][key]:8.4f} {scores['onnxruntime'][key]:12.4f}")


if __name__ == "__main__":
    main()
