"""coco_metrics must give exactly what plain pycocotools gives when run from files, as its documentation does."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from pixelforge.metrics.coco import STAT_KEYS, coco_metrics, plot_pr_curves

CLASSES = {1: "circle", 2: "square", 3: "triangle"}


def _fixture(seed: int = 0) -> tuple[dict, list[dict]]:
    """24 images, 3 classes, crowd regions, images without GT, images without detections, sizes in all 3 ranges."""
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    for image_id in range(1, 25):
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": 320, "height": 240})
        n_gt = 0 if image_id % 6 == 0 else int(rng.integers(1, 5))  # every 6th image has no ground truth
        for _ in range(n_gt):
            w, h = (float(v) for v in rng.choice([8, 20, 50, 120], 2) * rng.uniform(0.8, 1.2, 2))
            x, y = float(rng.uniform(0, 320 - w)), float(rng.uniform(0, 240 - h))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(rng.integers(1, 4)),
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(len(annotations) % 7 == 3)})
            if image_id % 5 == 0:  # no detections at all on these images
                continue
            for _ in range(int(rng.integers(0, 3))):  # near-misses, duplicates and wrong classes
                jitter = rng.normal(0, 0.1, 4) * [w, h, w, h]
                category = annotations[-1]["category_id"] if rng.random() < 0.8 else int(rng.integers(1, 4))
                results.append({"image_id": image_id, "category_id": category,
                                "bbox": [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3])],
                                "score": float(rng.random())})
        for _ in range(0 if image_id % 5 == 0 else int(rng.integers(0, 3))):  # false positives, also without GT
            results.append({"image_id": image_id, "category_id": int(rng.integers(1, 4)),
                            "bbox": [float(v) for v in rng.uniform(0, 100, 2)] + [float(v) for v in rng.uniform(5, 80, 2)],
                            "score": float(rng.random())})
    categories = [{"id": i, "name": n} for i, n in CLASSES.items()]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _pycocotools_from_files(gt_file, results_file):
    """pycocotools exactly as its README / demo notebook runs it."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_file))
        coco_dt = coco_gt.loadRes(str(results_file))
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def test_metrics_equal_pycocotools_run_from_files(tmp_path):
    gt, results = _fixture()
    assert any(a["iscrowd"] for a in gt["annotations"]) and len({r["image_id"] for r in results}) < 24
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    reference = _pycocotools_from_files(tmp_path / "gt.json", tmp_path / "res.json")

    ours = coco_metrics(gt, results)

    assert [ours[k] for k in STAT_KEYS] == pytest.approx(list(reference.stats), abs=1e-6)
    assert 0.05 < ours["map50"] < 0.95  # the fixture is neither trivial nor hopeless
    precision = reference.eval["precision"]  # [IoU, recall, class, area, maxDets]
    for k, name in enumerate(CLASSES.values()):
        p = precision[:, :, k, 0, 2]
        assert ours["per_class"][name] == pytest.approx(p[p > -1].mean(), abs=1e-9)
        p50 = precision[0, :, k, 0, 2]
        assert ours["per_class_ap50"][name] == pytest.approx(p50[p50 > -1].mean(), abs=1e-9)
        assert ours["pr_curve"]["precision50"][name] == pytest.approx(p50.tolist(), abs=1e-6)
    assert "score" not in gt["annotations"][0] and "id" not in results[0]  # the caller's dicts are not modified


def test_no_detections_scores_zero_not_a_crash():
    gt, _ = _fixture()
    metrics = coco_metrics(gt, [])
    assert metrics["map"] == 0.0 and metrics["map50"] == 0.0 and metrics["mar_100"] == 0.0
    assert set(metrics["per_class"]) == set(CLASSES.values())


def test_perfect_detections_score_one_and_missing_fields_are_filled():
    gt, _ = _fixture(seed=1)
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
               for a in gt["annotations"] if not a["iscrowd"]]
    for ann in gt["annotations"]:  # COCO files written by other tools may lack these
        del ann["area"], ann["id"]
    metrics = coco_metrics(gt, results)
    assert metrics["map"] == pytest.approx(1.0) and metrics["map50"] == pytest.approx(1.0)


def test_pr_curve_plot_is_written(tmp_path):
    gt, results = _fixture()
    path = plot_pr_curves(coco_metrics(gt, results), tmp_path / "pr.png")
    assert path.stat().st_size > 5000 and path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("has_gt, note, shown", [(True, "no detections (0)", "mAP50 0.000"),
                                                  (False, "no ground-truth objects", "mAP50 \u2014")])
def test_an_empty_pr_plot_says_why_and_no_ground_truth_is_no_minus_one(tmp_path, monkeypatch, has_gt, note, shown):
    from pixelforge.metrics.coco import empty_metrics
    from pixelforge.viz import plots

    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    plot_pr_curves(empty_metrics({1: "cat", 2: "dog"}, has_gt, num_images=4, num_detections=0), tmp_path / "pr.png")
    ax = figures[0].axes[0]
    assert any(note in t.get_text() for t in ax.texts), [t.get_text() for t in ax.texts]
    assert shown in ax.get_title() and "-1.000" not in ax.get_title()
