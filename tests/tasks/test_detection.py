"""The detection task: validation maps boxes back to the original images, the engine trains it end to end, and a
run evaluates, predicts and reports."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from pixelforge.errors import PixelforgeError
from pixelforge.tasks.common.boxes import coco_results
from pixelforge.tasks.detect.task import DetectionTask, prepare_data

CATEGORIES = {3: "box", 7: "disc"}  # non-contiguous ids: labels 1, 2 must map back to 3, 7
# One worker trains the module's tiny FCOS run once (loadgroup); ungrouped, both workers trained it.
pytestmark = pytest.mark.xdist_group("detection")


def write_tiny_coco(root: Path, per_split: dict[str, int] | None = None, size: int = 80, seed: int = 0) -> Path:
    """Boxes and discs on noise, COCO layout; one image per split has no objects and one object is a crowd region."""
    from pixelforge.data.boxes.coco import write_coco_annotations
    from pixelforge.data.boxes.source import BoxImage

    rng = np.random.default_rng(seed)
    images, index = [], 0
    for split, count in (per_split or {"train": 8, "val": 4}).items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            index += 1
            w, h = size, int(size * rng.uniform(0.6, 1.0))
            img = Image.fromarray(rng.integers(0, 60, (h, w, 3), dtype=np.uint8))
            draw, boxes, labels = ImageDraw.Draw(img), [], []
            for _ in range(0 if k == 0 else int(rng.integers(1, 3))):
                s = int(rng.integers(16, 30))
                x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
                category = int(rng.choice(list(CATEGORIES)))
                (draw.rectangle if category == 3 else draw.ellipse)([x, y, x + s - 1, y + s - 1], fill=(230, 200, 40))
                boxes.append([x, y, x + s, y + s])
                labels.append(category)
            path = root / "images" / split / f"{index:03d}.png"
            img.save(path)
            crowd = np.zeros(len(boxes), bool)
            if index == 2 and len(boxes):
                crowd[0] = True
            images.append(BoxImage(path, w, h, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64),
                                   crowd, index, split))
    write_coco_annotations(images, CATEGORIES, root)
    return root


class _Fabric:
    device = torch.device("cpu")
    world_size = 1


class _Oracle(torch.nn.Module):
    """A 'detector' that returns each image's true boxes (in input pixels): a perfect model for validate()."""

    def __init__(self, truth: dict[int, dict]):
        super().__init__()
        self.truth = truth

    def forward(self, images):
        return [self.truth[id(image)] for image in images]


def test_validate_scores_a_perfect_detector_one_after_resizing(tmp_path):
    from pixelforge.data.boxes.coco import coco_dict
    from pixelforge.data.boxes.dataset import BoxDataset
    from pixelforge.data.boxes.source import read_boxes
    from pixelforge.data.boxes.transforms import eval_box_transform

    source = read_boxes(write_tiny_coco(tmp_path / "data"))
    val = source.split("val")
    data = BoxDataset(val, source.category_ids, eval_box_transform(48), img_size=48)  # 80 px -> 48 px
    batch = [data[i] for i in range(len(data))]
    truth = {id(image): {"boxes": t["boxes"].as_subclass(torch.Tensor), "labels": t["labels"],
                         "scores": torch.ones(len(t["labels"]))} for image, t in batch}
    task = DetectionTask(coco_dict(val, source.categories), source.category_ids)
    images, targets = [b[0] for b in batch], [b[1] for b in batch]
    metrics = task.validate(_Oracle(truth), [(images[:2], targets[:2]), (images[2:], targets[2:])], _Fabric())
    assert metrics["val_map50"] == pytest.approx(1.0) and metrics["val_map"] > 0.9  # rounding of 48 px boxes


def test_coco_results_map_labels_to_category_ids_and_scale_boxes():
    output = {"boxes": torch.tensor([[10.0, 10.0, 20.0, 30.0], [0.0, 0.0, 5.0, 5.0]]),
              "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([2, 0])}
    results = coco_results(output, 5, (40, 50), (100, 80), [3, 7])
    assert results == [{"image_id": 5, "category_id": 7, "bbox": [20.0, 20.0, 20.0, 40.0], "score": 0.9}]


def test_bad_arch_fails_before_reading_data(tmp_path):
    from pixelforge.tasks.config import build_config

    cfg = build_config(data=str(tmp_path / "missing"), task="detect", arch="yolo")
    with pytest.raises(PixelforgeError, match="--arch 'yolo'"):
        prepare_data(cfg)


@pytest.fixture(scope="module")
def tiny_detect_run(tmp_path_factory):
    """FCOS from scratch, 2 epochs at 64 px on 8 images, through the real engine (a few seconds)."""
    import pixelforge

    root = write_tiny_coco(tmp_path_factory.mktemp("coco"))
    out = tmp_path_factory.mktemp("runs") / "det"
    result = pixelforge.train(str(root), task="detect", arch="fcos", weights="none", img_size=64, epochs=2,
                              batch_size=4, strategy="full", lr=1e-3, out=str(out), quiet=True)
    return result.run_dir, root


def test_engine_trains_a_detector_and_writes_the_report(tiny_detect_run):
    run, _ = tiny_detect_run
    rows = (run / "metrics.csv").read_text().splitlines()
    assert "val_map50" in rows[0] and len(rows) == 3
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["category_ids"] == [3, 7] and checkpoint["task"] == "detect"
    assert json.loads((run / "classes.json").read_text()) == ["box", "disc"]
    html = (run / "report.html").read_text()
    assert "mAP50" in html and "pr_curves.png" in html and "gallery.png" in html
    assert (run / "eval-val" / "gallery.png").stat().st_size > 5000
    card = (run / "model_card.md").read_text()  # every run gets a card; its numbers are the report's
    val_map50 = json.loads((run / "eval-val" / "metrics.json").read_text())["map50"]
    assert "object detection" in card and "box, disc" in card and f"| map50 | {val_map50:.4f} |" in card


def test_metrics_csv_and_summary_have_no_nan(tiny_detect_run):
    # Eval-mode detectors compute no loss: no val_loss column rather than a column of NaN.
    run, _ = tiny_detect_run
    text = (run / "metrics.csv").read_text()
    assert "nan" not in text.lower() and "val_loss" not in text.splitlines()[0]
    assert "nan" not in (run / "summary.json").read_text().lower()


def test_evaluate_matches_scoring_its_own_files(tiny_detect_run):
    from pixelforge.tasks.detect.evaluate import evaluate_detection, score_coco_files

    run, root = tiny_detect_run
    result = evaluate_detection(run, data=str(root), split="val", out=run / "eval-check")
    rescored = score_coco_files(root / "annotations" / "val.json", result.out_dir / "detections.json")
    assert rescored["map"] == pytest.approx(result.metrics["map"]) and result.metrics["split"] == "val"
    assert json.loads(json.dumps(result.to_json()))["figures"]["pr_curves"].endswith("pr_curves.png")


def test_evaluate_on_its_own_unsplit_data_leaves_out_the_training_images_unless_asked(tmp_path, caplog):
    import pixelforge
    from pixelforge.tasks.config import load_config

    root = write_tiny_coco(tmp_path / "coco", per_split={"photos": 10})  # no splits: training draws its own
    run = pixelforge.train(str(root), task="detect", arch="fcos", weights="none", img_size=48, epochs=1,
                           batch_size=4, strategy="full", out=str(tmp_path / "run"), quiet=True).run_dir
    trained = prepare_data(load_config(run / "config.yaml"))[0].split("train")
    with caplog.at_level("WARNING", logger="pixelforge"):
        held_out = pixelforge.evaluate(run, data=str(root), out=tmp_path / "held-out").metrics
    assert held_out["split"] == "all" and held_out["excluded_training_images"] == len(trained) > 0
    assert f"{len(trained)} of 10 images are the run's training images" in caplog.text
    scored = {row["image_id"] for row in json.loads((tmp_path / "held-out" / "detections.json").read_text())}
    assert not scored & {image.image_id for image in trained}
    everything = pixelforge.evaluate(run, data=str(root), include_train=True, out=tmp_path / "all").metrics
    assert everything["excluded_training_images"] is None


def test_evaluate_on_the_training_split_alone_is_an_error(cli, tiny_detect_run, tmp_path):
    run, root = tiny_detect_run  # data with split folders; --data names its train split's annotations
    result = cli("evaluate", run, "--data", root / "annotations" / "train.json", "--out", tmp_path / "eval")
    assert result.returncode == 2 and "all 8 images in split 'train' are the run's own training images" in result.stderr
    assert "--include-train" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "eval").exists()
    everything = cli("evaluate", run, "--data", root / "annotations" / "train.json", "--include-train", "--json",
                     "--out", tmp_path / "eval-with-train")
    assert everything.returncode == 0, everything.stderr
    assert json.loads(everything.stdout)["excluded_training_images"] is None


def test_score_coco_files_errors_name_the_file(tmp_path, tiny_detect_run):
    from pixelforge.tasks.detect.evaluate import score_coco_files

    _, root = tiny_detect_run
    gt = root / "annotations" / "val.json"
    bad = tmp_path / "res.json"
    bad.write_text(json.dumps([{"image_id": 999, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 1.0}]))
    with pytest.raises(PixelforgeError, match="image_id 999"):
        score_coco_files(gt, bad)
    bad.write_text("{not json")
    with pytest.raises(PixelforgeError, match="res.json: not valid JSON"):
        score_coco_files(gt, bad)
    with pytest.raises(PixelforgeError, match="not found"):
        score_coco_files(tmp_path / "nope.json", bad)


def test_score_coco_files_refuses_a_category_id_the_ground_truth_lacks(tmp_path, caplog):
    """0-based class indices scored against 1-based COCO ids matched nothing and scored 0 without a word."""
    from pixelforge.tasks.detect.evaluate import score_coco_files

    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}],
                              "categories": [{"id": 1, "name": "a"}],
                              "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5],
                                               "area": 25, "iscrowd": 0}]}))
    res = tmp_path / "res.json"
    res.write_text(json.dumps([{"image_id": 1, "category_id": 0, "bbox": [0, 0, 5, 5], "score": 0.9}]))
    with pytest.raises(PixelforgeError, match=r"res.json: no result has a category_id that .*gt.json lists \(result 0 "
                                              r"has 0; its ids: \[1\]\)"):
        score_coco_files(gt, res)
    res.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9}]))
    assert score_coco_files(gt, res)["map50"] == pytest.approx(1.0)
    # Some unknown ids (a detector of more classes scored on a subset): left out with a warning, as pycocotools does.
    res.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9},
                               {"image_id": 1, "category_id": 7, "bbox": [5, 5, 5, 5], "score": 0.95}]))
    with caplog.at_level(logging.WARNING, logger="pixelforge"):
        assert score_coco_files(gt, res)["map50"] == pytest.approx(1.0)
    assert "1 of 2 results have category ids [7]" in caplog.text


def test_predict_writes_coco_json_and_annotated_images(tmp_path, tiny_detect_run):
    from pixelforge.tasks.detect.evaluate import predict_detection

    run, root = tiny_detect_run
    files = sorted((root / "images" / "val").glob("*.png"))[:3]
    found = predict_detection(run, [str(f) for f in files], tmp_path / "pred", score_threshold=0.0)
    assert [f["image_id"] for f in found] == [1, 2, 3] and [f["path"] for f in found] == [str(f) for f in files]
    saved = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert len(saved) == sum(len(f["detections"]) for f in found)
    assert all(r["category_id"] in CATEGORIES and r["image_id"] in (1, 2, 3) for r in saved)
    for f in found:
        assert Image.open(f["annotated"]).size[0] >= 80  # drawn on the original image (80 px wide, enlarged)
        for d in f["detections"]:
            assert d["label"] == CATEGORIES[d["category_id"]] and d["score"] >= 0.0 and d["box"][2] <= 80.5


def test_an_image_gets_the_same_boxes_in_a_folder_as_alone(tmp_path, tiny_detect_run):
    # torchvision pads a batch to its largest image: a short image batched with a tall one got other boxes and
    # scores than alone (and than the exported package, which runs one image per call).
    from pixelforge.tasks.detect.evaluate import predict_detection

    run, _ = tiny_detect_run
    rng = np.random.default_rng(1)
    files = []
    for name, (h, w) in {"short": (20, 80), "tall": (80, 40)}.items():
        files.append(tmp_path / f"{name}.png")
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(files[-1])
    together = predict_detection(run, [str(f) for f in files], tmp_path / "both", score_threshold=0.0)
    for k, f in enumerate(files):
        alone = predict_detection(run, [str(f)], tmp_path / f.stem, score_threshold=0.0)[0]
        assert alone["detections"] and together[k]["detections"] == alone["detections"]


@pytest.mark.slow
def test_the_default_detector_learns_the_builtin_shapes(tmp_path):
    """The default recipe (Faster R-CNN on Lite0), shortened to 2 epochs of batch 4 at 128 px: well above chance.

    An untrained detector scores ~0. Measured on one thread (test mAP50, CPU s for the whole test body): the former
    setting (160 px, 3 epochs, batch 8, lr 2e-3) 0.61 in 76 s (seed 0). This one (128 px, 2 epochs, batch 4,
    lr 1e-3) seeds 0/1/2: 0.53/0.49/0.44 in 41/42/46 s. Rejected: 128 px at 3 epochs of batch 8 costs 59 s;
    lr 2e-3 at batch 4 gives 0.53/0.42/0.31 and 3e-3 collapses (0.09, seed 2); batch 2 costs 51 s; 2 epochs of
    batch 8 at 160 px gave 0.41/0.42/0.26. The bar 0.25 sits at 0.57x the worst seed."""
    import pixelforge
    from pixelforge.tasks.detect.evaluate import evaluate_detection

    result = pixelforge.train("shapes", task="detect", arch="fasterrcnn", img_size=128, epochs=2, batch_size=4,
                              strategy="full", lr=1e-3, out=str(tmp_path / "run"), quiet=True)
    metrics = evaluate_detection(result.run_dir).metrics
    assert metrics["split"] == "test" and metrics["map50"] > 0.25
