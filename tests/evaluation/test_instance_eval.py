"""COCO mask AP: ours must equal pycocotools' COCOeval(iouType="segm") run the plain way, from JSON files."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from pixelforge.errors import PixelforgeError
from pixelforge.metrics.coco import STAT_KEYS, coco_metrics
from pixelforge.tasks.instance.evaluate import encode_masks, instance_metrics, score_instance_files

SIZE = (96, 128)  # height, width: objects from small (< 32² px) to medium


def _disc(cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE[0], :SIZE[1]]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)


def _box_of(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def make_instance_fixture(seed: int = 0) -> tuple[dict, list[dict]]:
    """12 images, 2 classes (discs: RLE, squares: polygons); image 1 has a crowd region, image 11 no objects,
    image 12 no detections. Detections: shifted / shrunk copies of the truth, wrong classes and false alarms."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    for image_id in range(1, 13):
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": SIZE[0], "width": SIZE[1]})
        count = 0 if image_id == 11 else int(rng.integers(1, 4))
        for _ in range(count):
            category = int(rng.integers(1, 3))
            r = float(rng.uniform(3, 30))
            cy, cx = rng.uniform(r, SIZE[0] - r), rng.uniform(r, SIZE[1] - r)
            if category == 1:
                mask = _disc(cy, cx, r)
                segmentation = encode_masks(mask[None])[0]
            else:
                x0, y0, x1, y1 = cx - r, cy - r, cx + r, cy + r
                segmentation = [[x0, y0, x1, y0, x1, y1, x0, y1]]
                mask = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(segmentation, *SIZE)))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "segmentation": segmentation, "area": float(mask.sum()), "bbox": _box_of(mask),
                                "iscrowd": 0})
            if image_id == 12:
                continue
            for _copy in range(int(rng.integers(1, 3))):  # near copies, sometimes of the wrong class
                moved = np.roll(mask, tuple(rng.integers(-4, 5, 2)), axis=(0, 1))
                if moved.any():
                    label = category if rng.random() < 0.8 else 3 - category
                    results.append({"image_id": image_id, "category_id": label, "score": float(rng.random()),
                                    "segmentation": encode_masks(moved[None])[0]})
        if image_id == 1:  # a crowd region, as COCO stores them: uncompressed RLE (counts as a list)
            crowd = _disc(70, 100, 18)
            rle = mask_utils.encode(np.asfortranarray(crowd))
            counts = _uncompressed_counts(crowd)
            annotations.append({"id": len(annotations) + 1, "image_id": 1, "category_id": 1, "iscrowd": 1,
                                "segmentation": {"size": list(SIZE), "counts": counts},
                                "area": float(mask_utils.area(rle)), "bbox": _box_of(crowd)})
            results.append({"image_id": 1, "category_id": 1, "score": 0.77, "segmentation": encode_masks(crowd[None])[0]})
        if image_id != 12 and rng.random() < 0.7:  # a false alarm
            results.append({"image_id": image_id, "category_id": int(rng.integers(1, 3)), "score": float(rng.random()),
                            "segmentation": encode_masks(_disc(*rng.uniform(10, 80, 2), 8)[None])[0]})
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "disc"}, {"id": 2, "name": "square"}]}
    return gt, results


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    """Run lengths of a mask in column-major order, starting with zeros (COCO's uncompressed RLE)."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    return ([0] if flat[0] else []) + runs


def plain_cocoeval(gt_file: Path, results_file: Path, iou_type: str = "segm"):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_file))
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(str(results_file)), iouType=iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


@pytest.fixture(scope="module")
def fixture_files(tmp_path_factory) -> tuple[Path, Path, dict, list[dict]]:
    gt, results = make_instance_fixture()
    folder = tmp_path_factory.mktemp("segm")
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "results.json").write_text(json.dumps(results))
    return folder / "gt.json", folder / "results.json", gt, results


def test_fixture_covers_the_hard_cases(fixture_files):
    _, _, gt, results = fixture_files
    with_gt = {a["image_id"] for a in gt["annotations"]}
    with_results = {r["image_id"] for r in results}
    assert len(gt["images"]) >= 10 and len(gt["categories"]) == 2
    assert any(a["iscrowd"] for a in gt["annotations"])
    assert 11 not in with_gt and 11 in with_results  # an image without objects, but with a false alarm
    assert 12 in with_gt and 12 not in with_results  # an image whose objects were all missed


def test_mask_ap_equals_plain_pycocotools_segm(fixture_files):
    gt_file, results_file, gt, results = fixture_files
    reference = plain_cocoeval(gt_file, results_file)
    ours = instance_metrics(json.loads(gt_file.read_text()), json.loads(results_file.read_text()))
    for key, value in zip(STAT_KEYS, reference.stats):
        assert ours[key] == pytest.approx(float(value), abs=1e-6), key
    assert 0.2 < ours["map50"] < 0.95  # neither trivial nor perfect: the fixture exercises the matching
    precision = reference.eval["precision"][:, :, :, 0, -1]
    for k, name in enumerate(["disc", "square"]):
        assert ours["per_class"][name] == pytest.approx(float(precision[:, :, k][precision[:, :, k] > -1].mean()), abs=1e-6)
    assert score_instance_files(gt_file, results_file)["map"] == pytest.approx(float(reference.stats[0]), abs=1e-6)


def test_box_ap_of_mask_results_equals_pycocotools_bbox(fixture_files, tmp_path):
    from pycocotools import mask as mask_utils

    gt_file, _, gt, results = fixture_files
    boxed = [{**r, "bbox": mask_utils.toBbox({**r["segmentation"], "counts": r["segmentation"]["counts"].encode()}).tolist()}
             for r in results]
    (tmp_path / "boxed.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "segmentation"} for r in boxed]))
    reference = plain_cocoeval(gt_file, tmp_path / "boxed.json", "bbox")
    box = instance_metrics(gt, results)["box"]
    for key, value in zip(STAT_KEYS, reference.stats):
        assert box[key] == pytest.approx(float(value), abs=1e-6), key
    assert box["map"] == pytest.approx(coco_metrics(gt, boxed)["map"], abs=1e-9)


def test_a_results_bbox_does_not_change_mask_ap(fixture_files):
    """pycocotools would size a result by its box when it has one; mask AP must size it by its mask."""
    _, _, gt, results = fixture_files
    with_boxes = [{**r, "bbox": [0.0, 0.0, 120.0, 90.0]} for r in results]
    assert instance_metrics(gt, with_boxes)["map_small"] == pytest.approx(instance_metrics(gt, results)["map_small"])


def test_no_detections_scores_zero_not_a_crash(fixture_files):
    _, _, gt, _ = fixture_files
    metrics = instance_metrics(gt, [])
    assert metrics["map"] == 0.0 and metrics["box"]["map50"] == 0.0 and metrics["per_class"]["disc"] == 0.0


def test_a_result_without_a_mask_is_a_one_line_error(fixture_files):
    _, _, gt, results = fixture_files
    with pytest.raises(PixelforgeError, match="segmentation"):
        instance_metrics(gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4], "score": 0.5}])


def test_results_for_other_images_or_without_a_score_are_one_line_errors(fixture_files, tmp_path):
    # `pixelforge predict` numbers images 1, 2, ... (its images.json): scored against a COCO file whose ids differ,
    # pycocotools stopped on an AssertionError with a traceback.
    gt_file, _, _, results = fixture_files
    (tmp_path / "other.json").write_text(json.dumps([{**results[0], "image_id": 999}]))
    with pytest.raises(PixelforgeError, match=r"other\.json: result 0 has image_id 999.*images\.json"):
        score_instance_files(gt_file, tmp_path / "other.json")
    (tmp_path / "unscored.json").write_text(json.dumps([{k: v for k, v in results[0].items() if k != "score"}]))
    with pytest.raises(PixelforgeError, match="result 0 lacks score"):
        score_instance_files(gt_file, tmp_path / "unscored.json")


def test_results_with_a_category_id_the_ground_truth_lacks_are_one_line_errors(fixture_files, tmp_path):
    # 0-based class indices against 1-based COCO ids matched nothing and scored 0 without a word.
    gt_file, _, _, results = fixture_files
    (tmp_path / "zero.json").write_text(json.dumps([{**r, "category_id": 0} for r in results]))
    with pytest.raises(PixelforgeError, match=r"zero\.json: no result has a category_id that .* lists \(result 0 has 0"):
        score_instance_files(gt_file, tmp_path / "zero.json")
