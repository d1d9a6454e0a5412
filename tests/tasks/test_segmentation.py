"""Segmentation end to end on tiny data: train a run, evaluate it, predict masks, score mask folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelforge.errors import PixelforgeError

pytestmark = pytest.mark.xdist_group("segmentation")  # the module's trained run is built once, on one worker

CLASSES = ["background", "square", "disc"]


def write_tiny_masks(root: Path, count: int = 12, size: int = 48, seed: int = 0, grey16: bool = False) -> Path:
    """images/ + masks/ (no splits): a bright square (class 1) and a dark disc (class 2) on noise, a few ignored
    pixels along the top edge."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        mask = np.zeros((size, size), np.uint8)
        x, y = rng.integers(2, size // 2, 2)
        mask[y:y + size // 3, x:x + size // 3] = 1
        cx, cy = rng.integers(size // 4, 3 * size // 4, 2)
        mask[(xx - cx) ** 2 + (yy - cy) ** 2 < (size // 6) ** 2] = 2
        grey = rng.normal(0.5, 0.08, (size, size)) + 0.35 * (mask == 1) - 0.35 * (mask == 2)
        mask[0, :5] = 255
        if grey16:  # a 12-bit camera in a 16-bit file: values only up to 4095
            Image.fromarray((grey.clip(0, 1) * 4095).astype(np.uint16)).save(root / "images" / f"{i:03d}.png")
        else:
            rgb = (np.stack([grey, grey * 0.8, 1 - grey], -1).clip(0, 1) * 255).astype(np.uint8)
            Image.fromarray(rgb).save(root / "images" / f"{i:03d}.png")
        Image.fromarray(mask, mode="L").save(root / "masks" / f"{i:03d}.png")
    (root / "classes.json").write_text(json.dumps(CLASSES))
    return root


@pytest.fixture(scope="module")
def tiny_masks(tmp_path_factory) -> Path:
    return write_tiny_masks(tmp_path_factory.mktemp("seg") / "data")


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory, tiny_masks) -> Path:
    import pixelforge

    out = tmp_path_factory.mktemp("runs") / "seg"
    result = pixelforge.train(str(tiny_masks), task="segment", arch="unet", weights="none", img_size=32, epochs=2,
                              batch_size=4, strategy="full", lr=3e-3, test_fraction=0.2, out=str(out), quiet=True)
    assert result.monitor == "val_miou" and 0 <= result.best_metric <= 1
    return result.run_dir


def test_training_writes_a_report_with_segmentation_metrics(seg_run):
    rows = (seg_run / "metrics.csv").read_text().splitlines()
    assert "val_miou" in rows[0] and "val_pixel_accuracy" in rows[0] and len(rows) == 3
    report = (seg_run / "report.html").read_text()
    assert "mIoU" in report and "predictions.png" in report and "confusion_matrix.png" in report
    metrics = json.loads((seg_run / "eval-val" / "metrics.json").read_text())
    assert metrics["split"] == "val" and set(metrics["per_class_iou"]) == set(CLASSES)
    checkpoint = torch.load(seg_run / "checkpoints" / "best.ckpt", weights_only=False)
    assert checkpoint["task"] == "segment" and checkpoint["arch"] == "unet" and checkpoint["in_channels"] == 3
    assert checkpoint["mean"] == [0.5, 0.5, 0.5]  # 8-bit RGB data: the Lite0 encoder's own normalisation
    card = (seg_run / "model_card.md").read_text()
    assert "semantic segmentation" in card and f"| miou | {metrics['miou']:.4f} |" in card


def test_evaluate_scores_the_test_split_at_full_mask_resolution(seg_run, tiny_masks):
    from pixelforge.tasks.segment.evaluate import evaluate_segmentation

    result = evaluate_segmentation(seg_run)
    m = result.to_json()
    assert m["split"] == "test" and m["num_images"] == 2
    assert {"miou", "per_class_iou", "dice", "per_class_dice", "pixel_accuracy", "confusion_matrix"} <= set(m)
    # Every non-ignored pixel of the full 48 px masks is scored (training ran at 32 px).
    assert m["num_pixels"] == 2 * (48 * 48 - 5)
    on_folder = evaluate_segmentation(seg_run, data=str(tiny_masks), out=seg_run / "all", include_train=True)
    assert on_folder.metrics["split"] == "all" and on_folder.metrics["num_images"] == 12


def test_evaluate_rewrites_the_card_with_the_test_split_s_figures(seg_run, tmp_path):
    """The detect/segment/instance card reported eval-val's figures from training, and `evaluate` left it so: it
    now reports the run's latest own evaluation, the test split's once scored, and `evaluate` rewrites it."""
    import shutil

    import pixelforge

    run = tmp_path / "run"
    shutil.copytree(seg_run, run)
    shutil.rmtree(run / "eval-test", ignore_errors=True)
    val = json.loads((run / "eval-val" / "metrics.json").read_text())
    assert f"On the **val** split, {val['num_images']} images" in (run / "model_card.md").read_text()
    metrics = pixelforge.evaluate(run).metrics
    card = (run / "model_card.md").read_text()
    assert f"On the **test** split, {metrics['num_images']} images" in card and "eval-test/metrics.json" in card
    assert f"| miou | {metrics['miou']:.4f} |" in card


def test_evaluate_on_its_own_folder_leaves_out_the_training_images_unless_asked(seg_run, tiny_masks, tmp_path,
                                                                               caplog):
    import shutil

    import pixelforge
    from pixelforge.tasks.config import load_config
    from pixelforge.tasks.registry import get_task
    from pixelforge.tasks.segment.task import prepare_data

    trained = prepare_data(load_config(seg_run / "config.yaml"))[0].split("train")
    with caplog.at_level("WARNING", logger="pixelforge"):
        held_out = pixelforge.evaluate(seg_run, data=str(tiny_masks), out=tmp_path / "held-out").metrics
    assert held_out["excluded_training_images"] == len(trained) and held_out["num_images"] == 12 - len(trained)
    assert f"{len(trained)} of 12 images are the run's training images" in caplog.text
    assert f"({len(trained)} training images left out)" in get_task("segment").format_metrics(held_out)
    everything = pixelforge.evaluate(seg_run, data=str(tiny_masks), include_train=True, out=tmp_path / "all").metrics
    assert everything["num_images"] == 12 and everything["excluded_training_images"] is None
    copies = tmp_path / "copies"  # the training images alone, under other names: nothing held out to score
    (copies / "images").mkdir(parents=True)
    (copies / "masks").mkdir()
    shutil.copy(tiny_masks / "classes.json", copies / "classes.json")
    for i, sample in enumerate(trained):
        shutil.copy(sample.image, copies / "images" / f"copy{i}.png")
        shutil.copy(sample.mask, copies / "masks" / f"copy{i}.png")
    with pytest.raises(PixelforgeError, match=r"are the run's own training images.*--include-train"):
        pixelforge.evaluate(seg_run, data=str(copies), out=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_predict_writes_palette_masks_and_overlays(seg_run, tiny_masks, tmp_path):
    from pixelforge.tasks.segment.evaluate import predict_segmentation

    paths = sorted((tiny_masks / "images").glob("*.png"))[:2]
    results = predict_segmentation(seg_run, paths, tmp_path / "pred")
    assert [Path(r["mask"]).name for r in results] == [p.name for p in paths]  # same stem, .png
    with Image.open(results[0]["mask"]) as mask:
        assert mask.mode == "P" and mask.size == (48, 48)
        assert np.asarray(mask).max() < len(CLASSES)
    assert Path(results[0]["overlay"]).is_file()
    assert abs(sum(results[0]["class_fractions"].values()) - 1) < 1e-4
    # The README's flow: predict into a folder, then score that folder against the truth masks as it is.
    from pixelforge.tasks.segment.evaluate import score_mask_folders

    truth = tmp_path / "truth"
    truth.mkdir()
    for path in paths:
        (truth / path.name).write_bytes((tiny_masks / "masks" / path.name).read_bytes())
    scored = score_mask_folders(truth, tmp_path / "pred", num_classes=len(CLASSES), ignore_index=255)
    assert scored["num_images"] == 2 and 0 <= scored["miou"] <= 1


def test_predicting_twice_writes_a_second_folder_beside_the_first(seg_run, tiny_masks, tmp_path, cli):
    import shutil

    run = Path(shutil.copytree(seg_run, tmp_path / "run"))
    image = sorted((tiny_masks / "images").glob("*.png"))[0]
    first = cli("predict", run, image)
    assert first.returncode == 0 and f"outputs: {run / 'predictions'}" in first.stdout, first.stderr
    written = {p.name: p.read_bytes() for p in (run / "predictions").iterdir() if p.is_file()}
    second = cli("predict", run, image)
    assert second.returncode == 0 and f"outputs: {run / 'predictions-2'}" in second.stdout
    assert {p.name: p.read_bytes() for p in (run / "predictions").iterdir() if p.is_file()} == written
    refused = cli("predict", run, image, "--out", run / "predictions")
    assert refused.returncode == 2 and "already exists" in refused.stderr
    import pixelforge  # the Python API numbers its default folder as the CLI does

    third = pixelforge.predict(run, [str(image)])
    assert Path(third[0]["mask"]).parent == run / "predictions-3"
    assert {p.name: p.read_bytes() for p in (run / "predictions").iterdir() if p.is_file()} == written


def test_score_mask_folders_matches_by_stem_and_explains_mistakes(tiny_masks, tmp_path):
    from pixelforge.tasks.segment.evaluate import score_mask_folders

    gt = tiny_masks / "masks"
    pred = tmp_path / "pred"
    pred.mkdir()
    for path in gt.glob("*.png"):  # a perfect prediction: the truth, with ignored pixels as background
        values = np.asarray(Image.open(path)).copy()
        values[values == 255] = 0
        Image.fromarray(values).save(pred / path.name)
    scores = score_mask_folders(gt, pred, 3, ignore_index=255)
    assert scores["miou"] == 1.0 and scores["pixel_accuracy"] == 1.0 and scores["num_images"] == 12
    with pytest.raises(PixelforgeError, match="pixel value 255 is not a class id"):
        score_mask_folders(gt, pred, 3)  # the truth's 255s need --ignore-index
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(pred / "000.png")
    with pytest.raises(PixelforgeError, match=r"000\.png: size 10x10 differs"):
        score_mask_folders(gt, pred, 3, ignore_index=255)
    (pred / "000.png").unlink()
    with pytest.raises(PixelforgeError, match=r"000\.png: no prediction with the same name"):
        score_mask_folders(gt, pred, 3, ignore_index=255)


def test_a_prediction_id_beyond_the_classes_is_not_told_to_pass_ignore_index(tmp_path):
    """--ignore-index applies to the truth: a prediction's out-of-range id was told to pass it, which cannot help."""
    from pixelforge.tasks.segment.evaluate import score_mask_folders

    for folder, value in (("gt", 1), ("pred", 9)):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((4, 4), value, np.uint8)).save(tmp_path / folder / "a.png")
    with pytest.raises(PixelforgeError, match=r"pred/a\.png: pixel value 9 .*a prediction must give every pixel a class") as info:
        score_mask_folders(tmp_path / "gt", tmp_path / "pred", 3, ignore_index=255)
    assert "--ignore-index" not in str(info.value)


def test_sixteen_bit_grey_data_gets_one_channel_and_dataset_normalisation(tmp_path):
    from types import SimpleNamespace

    from pixelforge.tasks.config import build_config
    from pixelforge.engine.progress import EpochProgress
    from pixelforge.tasks.segment import task as segmentation

    data = write_tiny_masks(tmp_path / "grey", count=6, grey16=True)
    cfg = build_config(data=str(data), task="segment", weights="none", img_size=32, strategy="linear", quiet=True)
    source, classes = segmentation.prepare_data(cfg)
    assert classes == CLASSES and source.channels == 1 and source.bit_depth == 16
    fabric = SimpleNamespace(device=torch.device("cpu"), world_size=1)
    setup = segmentation.build_setup(cfg, source, classes, fabric, EpochProgress(quiet=True))
    assert setup.model.in_channels == 1 and setup.extra_checkpoint["in_channels"] == 1
    mean = setup.extra_checkpoint["mean"]
    assert len(mean) == 1 and 0.02 < mean[0] < 0.06  # ~0.5 * 4095 / 65535: the data's own statistics
    image, mask = setup.train_data[0]
    assert image.shape == (1, 32, 32) and abs(float(image.mean())) < 3
    groups = setup.param_groups(1e-3)  # linear: only the decoder is optimised
    encoder = {id(p) for p in setup.model.encoder.parameters()}
    assert not any(id(p) in encoder for g in groups for p in g["params"])


def test_augment_options_set_the_mask_augmentation(tmp_path):
    """`augment_options: {hflip: false}` (text, or left and right in anatomy) was ignored: masks were still flipped."""
    from types import SimpleNamespace

    from torchvision.transforms import v2

    from pixelforge.engine.progress import EpochProgress
    from pixelforge.tasks.config import build_config
    from pixelforge.tasks.segment import task as segmentation

    data = write_tiny_masks(tmp_path / "data", count=6)
    cfg = build_config(data=str(data), task="segment", weights="none", img_size=32, augment="standard",
                       augment_options={"hflip": False, "rotate_degrees": 0}, quiet=True)
    source, classes = segmentation.prepare_data(cfg)
    fabric = SimpleNamespace(device=torch.device("cpu"), world_size=1)
    setup = segmentation.build_setup(cfg, source, classes, fabric, EpochProgress(quiet=True))
    kinds = [type(t) for t in setup.train_data.transform.transform.transforms]
    assert v2.RandomResizedCrop in kinds and v2.RandomHorizontalFlip not in kinds and v2.RandomRotation not in kinds


def test_bad_segmentation_data_fails_before_a_run_folder_exists(tmp_path):
    import pixelforge

    data = write_tiny_masks(tmp_path / "data", count=6)
    with pytest.raises(PixelforgeError, match="class_weights"):
        pixelforge.train(str(data), task="segment", class_weights=[1.0, 2.0], out=str(tmp_path / "run"), quiet=True)
    assert not (tmp_path / "run").exists()


def test_bf16_segmentation_keeps_the_encoders_depthwise_convolutions_in_fp32(tiny_masks, tmp_path, caplog):
    import pixelforge

    caplog.set_level("INFO", logger="pixelforge")
    result = pixelforge.train(str(tiny_masks), task="segment", arch="unet", weights="none", img_size=32, epochs=1,
                              batch_size=4, precision="bf16-mixed", accelerator="cpu", out=str(tmp_path / "bf16"),
                              quiet=True)  # the CPU policy: on CUDA every convolution runs in bf16
    assert json.loads((result.run_dir / "summary.json").read_text())["precision"] == "bf16-mixed"
    assert 0 <= result.best_metric <= 1
    assert any("16 depthwise convolutions kept in fp32" in r.getMessage() for r in caplog.records)


def test_scoring_mask_folders_names_the_classes_of_the_dataset_and_infers_their_count(tmp_path):
    """The built-in layout keeps classes.json two levels above masks/test: the scores named the classes "0", "1",
    "2" and --num-classes had to be given although the dataset says it."""
    from pixelforge.tasks.registry import get_task

    root = write_tiny_masks(tmp_path / "data", count=2)
    (root / "classes.json").write_text(json.dumps(CLASSES))
    (root / "masks" / "test").mkdir()
    for mask in (root / "masks").glob("*.png"):
        mask.rename(root / "masks" / "test" / mask.name)
    (tmp_path / "pred").mkdir()
    for mask in (root / "masks" / "test").glob("*.png"):  # the truth itself, its ignored pixels called background
        values = np.asarray(Image.open(mask))
        Image.fromarray(np.where(values == 255, 0, values).astype(np.uint8)).save(tmp_path / "pred" / mask.name)
    scored = get_task("segment").score_files(root / "masks" / "test", tmp_path / "pred", ignore_index=255)
    assert list(scored["per_class_iou"]) == CLASSES and scored["miou"] == pytest.approx(1.0)
    (root / "classes.json").unlink()
    with pytest.raises(PixelforgeError, match="no classes.json or classes.txt in it or above it; .*--num-classes K"):
        get_task("segment").score_files(root / "masks" / "test", tmp_path / "pred")
    assert list(get_task("segment").score_files(root / "masks" / "test", tmp_path / "pred", num_classes=3,
                                                ignore_index=255)["per_class_iou"]) == ["0", "1", "2"]
