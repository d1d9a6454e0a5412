"""Few-shot numbers for docs/few-shot.md: hymenoptera K-shot accuracy, episodic 5-way 5-shot on digits, a baseline.

    PYTHONPATH=src python -m benchmarks.fewshot [--data ../shared/data/hymenoptera/train] [--draws 5]
        [--models tf_efficientnet_lite2,tf_efficientnet_lite1,tf_efficientnet_lite0] [--episodic digits:5,shapes:4]

1. The headline, end to end through `few_shot_predict` (what `pixelforge fewshot` runs): 5 images per class of
   hymenoptera/train as support, the rest as query, in a temporary folder of symbolic links (nothing is copied).
2. K = 1, 5, 10 with and without TTA and the logistic head, on embeddings computed once per image and view; each
   cell is the mean (and spread) over `--draws` seeded support draws, the query being every other image.
3. What a user would do by hand: timm features (its own transform, not normalised) + scikit-learn 1-NN.
4. Episodic 5-shot, 15 queries, 600 episodes on the built-in digits (5-way) and shapes (4 classes: 4-way), with the
   95% interval (their embeddings are cached under $PIXELFORGE_HOME: a second run reads them).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HYMENOPTERA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hymenoptera" / "train"
SHOTS = (1, 5, 10)


def split_folders(root: Path, shots: int, seed: int, work: Path) -> tuple[Path, Path]:
    """SUPPORT/<class>/ with `shots` seeded images and QUERY/<class>/ with the rest, as symbolic links."""
    from pixelforge.data.images import list_images

    rng = np.random.default_rng(seed)
    support, query = work / f"support-{shots}-{seed}", work / f"query-{shots}-{seed}"
    for class_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        images = list_images(class_dir)
        chosen = set(rng.choice(len(images), size=shots, replace=False).tolist())
        for i, path in enumerate(images):
            target = (support if i in chosen else query) / class_dir.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path.resolve())
    return support, query


def support_draw(labels: torch.Tensor, shots: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(labels.numpy() == c), size=shots, replace=False)
                           for c in labels.unique().tolist()])


def accuracy_grid(vectors: dict, labels: torch.Tensor, draws: int) -> list[tuple]:
    from pixelforge.models.fewshot import HEAD_MIN_SHOTS
    from pixelforge.tasks.classify.fewshot.predict import choose_method, classify_embeddings

    rows = []
    for shots in SHOTS:
        for tta in (False, True):
            for head in (False, True):
                if head and shots < HEAD_MIN_SHOTS:
                    continue  # the head needs >= 5 images a class (models/fewshot.py)
                method = choose_method(head, shots)
                accuracies = []
                for seed in range(draws):
                    support = support_draw(labels, shots, seed)
                    query = np.setdiff1d(np.arange(len(labels)), support)
                    scores = classify_embeddings(vectors[tta][support], labels[support], vectors[tta][query],
                                                 int(labels.max()) + 1, method, seed)
                    accuracies.append(float((scores.argmax(1) == labels[query]).float().mean()))
                rows.append((shots, tta, method, float(np.mean(accuracies)), float(np.std(accuracies))))
    return rows


def knn_baseline(root: Path, draws: int, name: str) -> dict:
    """timm features of backbone `name` (no normalisation) + scikit-learn 1-nearest-neighbour, 5 shots, same draws."""
    import timm
    from sklearn.neighbors import KNeighborsClassifier
    from torchvision.datasets import ImageFolder

    from pixelforge.models.weights import bundled_imagenet_state_dict

    model = timm.create_model(name, pretrained=False, num_classes=0)
    model.load_state_dict(bundled_imagenet_state_dict(model, name))
    model.eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    dataset = ImageFolder(str(root), transform=transform)
    with torch.inference_mode():
        features = torch.cat([model(x) for x, _ in torch.utils.data.DataLoader(dataset, batch_size=32)])
    labels = torch.tensor(dataset.targets)
    accuracies = []
    for seed in range(draws):
        support = support_draw(labels, 5, seed)
        query = np.setdiff1d(np.arange(len(labels)), support)
        knn = KNeighborsClassifier(n_neighbors=1).fit(features[support].numpy(), labels[support].numpy())
        accuracies.append(float((knn.predict(features[query].numpy()) == labels[query].numpy()).mean()))
    return {"mean": float(np.mean(accuracies)), "std": float(np.std(accuracies))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fewshot", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HYMENOPTERA, help="folder of class subfolders")
    parser.add_argument("--draws", type=int, default=5, help="seeded support draws per grid cell")
    parser.add_argument("--episodic", default="digits:5,shapes:4",
                        help="episodic sets and their ways, NAME:WAYS,... (5-shot, 15 queries, 600 episodes)")
    parser.add_argument("--models", default="tf_efficientnet_lite2,tf_efficientnet_lite0",
                        help="backbones of the grid and the baseline, comma-separated")
    args = parser.parse_args(argv)
    from pixelforge.tasks.classify.fewshot.episodic import embed_dataset, evaluate_episodes, format_episodes
    from pixelforge.tasks.classify.fewshot.predict import few_shot_predict

    if not args.data.is_dir():
        print(f"no data at {args.data}: skipped")
        return 0
    with tempfile.TemporaryDirectory() as work:
        support, query = split_folders(args.data, 5, 0, Path(work))
        started, cpu = time.perf_counter(), time.process_time()
        result = few_shot_predict(support, query, seed=0)
        print(f"1. end to end, 5-shot (seed 0), {result['model']}: accuracy {result['accuracy']:.4f} on "
              f"{result['n_query']} query images, "
              f"{time.perf_counter() - started:.1f} s wall, {time.process_time() - cpu:.1f} s CPU "
              f"(features: {result['feature_engine']})")
    print(f"2. {args.data}, mean +- std over {args.draws} seeded support draws, the rest as query")
    print("| model | K | TTA | method | accuracy |\n| --- | --- | --- | --- | --- |")
    for model in args.models.split(","):
        vectors = {}
        for tta in (False, True):
            vectors[tta], labels, classes = embed_dataset(str(args.data), cache=False, model=model, tta=tta)
        for shots, tta, method, mean, std in accuracy_grid(vectors, labels, args.draws):
            print(f"| {model} | {shots} | {'flip' if tta else 'no'} | {method} | {100 * mean:.1f}% +- {100 * std:.1f} |",
                  flush=True)
    for model in args.models.split(","):
        baseline = knn_baseline(args.data, args.draws, model)
        print(f"3. baseline, timm {model} features (its own transform) + sklearn 1-NN, 5-shot: "
              f"{100 * baseline['mean']:.1f}% +- {100 * baseline['std']:.1f}", flush=True)
    for item in args.episodic.split(","):
        name, ways = item.split(":")
        started, cpu = time.perf_counter(), time.process_time()
        metrics = evaluate_episodes(name, ways=int(ways), shots=5, queries=15, episodes=600, seed=0)
        print(f"4. {name}: {format_episodes(metrics)}; {time.perf_counter() - started:.1f} s wall, "
              f"{time.process_time() - cpu:.1f} s CPU (embedding or cache read {metrics['embed_seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
