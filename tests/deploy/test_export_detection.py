"""A detection run exports to an ONNX package whose boxes match PyTorch's, and the package predicts without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pixelforge.errors import PixelforgeError
from tests.output_checks import check_run_and_package
from tests.tasks.test_detection import write_tiny_coco

pytestmark = pytest.mark.xdist_group("export_detection")  # the module's trained run is built once, on one worker


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory):
    import pixelforge

    root = write_tiny_coco(tmp_path_factory.mktemp("coco"), {"train": 6, "val": 3})
    result = pixelforge.train(str(root), task="detect", arch="fasterrcnn", weights="none", img_size=64, epochs=1,
                              batch_size=3, strategy="full", lr=1e-3, out=str(tmp_path_factory.mktemp("runs") / "d"),
                              quiet=True)
    return result.run_dir, root


def test_export_writes_a_package_that_matches_pytorch(tmp_path, detect_run):
    from pixelforge.tasks.detect.export import export_package

    run, _ = detect_run
    package = export_package(run, tmp_path / "pkg")
    assert {p.name for p in package.iterdir()} >= {"model.onnx", "preprocess.json", "classes.json", "package.json",
                                                    "parity.json", "model_card.md"}
    from pixelforge.runs.card_file import card_text

    # The run's card travels, without the signature that tells pixelforge whether a user edited the run's copy.
    assert (package / "model_card.md").read_text() == card_text(run / "model_card.md")
    manifest = json.loads((package / "package.json").read_text())
    assert manifest["task"] == "detect" and manifest["category_ids"] == [3, 7]
    parity = json.loads((package / "parity.json").read_text())
    assert parity["passed"] and parity["images"] == 3 and parity["matched"] == parity["torch_detections"]
    with pytest.raises(PixelforgeError, match="not empty"):
        export_package(run, package)


def test_export_is_refused_when_boxes_differ(tmp_path, detect_run, monkeypatch):
    from pixelforge.tasks.common import boxes_export
    from pixelforge.tasks.detect.export import export_package

    run, _ = detect_run
    monkeypatch.setattr(boxes_export, "match_detections",
                        lambda e, g, floor, *limits: boxes_export.BoxMatch(0, 1, 0.0, 0.0))
    with pytest.raises(PixelforgeError, match="export refused"):
        export_package(run, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_matching_tolerates_only_borderline_scores():
    import numpy as np

    from pixelforge.tasks.common.boxes_export import match_detections

    boxes = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32)
    a = (boxes, np.array([0.9, 0.0505], np.float32), np.array([1, 2]))
    b = (boxes[:1], np.array([0.9004], np.float32), np.array([1]))
    assert match_detections(a, b, floor=0.05)[:2] == (1, 0)  # the 0.0505 one sits at the threshold
    c = (boxes[:1] + 1, np.array([0.9], np.float32), np.array([1]))  # IoU ~0.68: not the same box
    assert match_detections(a, c, floor=0.05)[1] == 2


def test_the_same_flat_box_on_both_sides_is_a_match():
    """A box clipped flat against the border has IoU 0 with itself: an untrained FCOS's export was refused over
    detections both runtimes gave alike."""
    import numpy as np

    from pixelforge.tasks.common.boxes_export import match_detections

    flat = np.array([[21.24, 48.0, 26.65, 48.0], [0.0, 47.65, 0.0, 48.0]], np.float32)
    side = (flat, np.array([0.3, 0.2], np.float32), np.array([1, 1]))
    found = match_detections(side, (flat + 1e-4, side[1], side[2]), floor=0.05)
    assert (found.matched, found.failures, found.worst_iou) == (2, 0, 1.0)
    assert match_detections(side, (flat + [0, 0, 2, 0], side[1], side[2]), floor=0.05).failures == 4  # other boxes


# Four boxes in a column: each overlaps its neighbours by IoU 0.67 and the ones two apart by 0.43, so at NMS IoU
# 0.5 neighbours suppress each other and the others do not; e and f overlap nothing.
COLUMN = {name: np.array([left, top, left + 10, top + 10], np.float32) for name, left, top in (
    ("d", 0, -2), ("a", 0, 0), ("b", 0, 2), ("c", 0, 4), ("e", 20, 20), ("f", 40, 40))}


def detections(*found: tuple[str, float], label: int = 1) -> tuple:
    """(boxes, scores, labels) of COLUMN boxes named with their scores, e.g. detections(("a", 0.24))."""
    return (np.stack([COLUMN[name] for name, _ in found]).reshape(-1, 4), np.array([s for _, s in found], np.float32),
            np.full(len(found), label))


def test_an_nms_tie_broken_the_other_way_is_a_tie_swap_not_a_failure():
    from pixelforge.tasks.common.boxes_export import match_detections

    torch_side, onnx_side = detections(("a", 0.242479)), detections(("b", 0.242479))  # tied: each kept one
    assert match_detections(torch_side, onnx_side, floor=0.05)[:2] == (0, 2)  # without the NMS rule: two lonely
    found = match_detections(torch_side, onnx_side, floor=0.05, nms_iou=0.5)
    assert (found.failures, found.tie_swaps) == (0, 2)
    assert match_detections(torch_side, detections(("b", 0.2434)), 0.05, nms_iou=0.5).failures == 0  # within 1e-3


def test_what_a_tie_swap_suppressed_on_one_side_only_is_a_tie_swap_too():
    from pixelforge.tasks.common.boxes_export import match_detections

    # The export's real case: a kept a, so c survived (IoU 0.43) and d did not; ONNX kept b, which did the reverse.
    torch_side = detections(("a", 0.242479), ("c", 0.118917))
    onnx_side = detections(("b", 0.242479), ("d", 0.113716))
    found = match_detections(torch_side, onnx_side, floor=0.05, nms_iou=0.5)
    assert (found.failures, found.tie_swaps) == (0, 4)
    assert match_detections(torch_side, onnx_side, floor=0.05)[1] == 4


def test_ties_do_not_excuse_missing_boxes_or_real_differences():
    from pixelforge.tasks.common.boxes_export import match_detections

    tied = detections(("a", 0.3))
    swap = detections(("b", 0.3))
    cases = [
        (detections(("a", 0.3), ("c", 0.9)), swap, 1),   # a swap, and a confident box ONNX lost: c fails
        (tied, detections(("b", 0.302)), 2),            # scores 2e-3 apart: not a tie
        (tied, detections(("c", 0.3)), 2),              # IoU 0.43 < 0.5: NMS would have kept both
        (tied, detections(("b", 0.3), label=2), 2),     # another label: class-wise NMS never compared them
        (detections(("c", 0.119)), detections(("b", 0.24)), 2),  # b would suppress c, but no tie started it
    ]
    for torch_side, onnx_side, failures in cases:
        assert match_detections(torch_side, onnx_side, floor=0.05, nms_iou=0.5).failures == failures


def test_a_box_the_per_image_cap_cut_at_a_tie_is_a_cap_tie():
    from pixelforge.tasks.common.boxes_export import match_detections

    kept = (("a", 0.9), ("c", 0.6))  # far enough apart (0.43) to survive NMS on both sides
    torch_side = detections(*kept, ("e", 0.2))
    onnx_side = detections(*kept, ("f", 0.2004))  # the third place tied: each side's cap of 3 kept another box
    assert match_detections(torch_side, onnx_side, floor=0.05, cap=3)[:2] == (2, 0)
    assert match_detections(torch_side, onnx_side, floor=0.05, cap=3).cap_ties == 2
    assert match_detections(torch_side, onnx_side, floor=0.05, cap=4)[1] == 2  # nobody hit a cap of 4
    # 0.05 above torch's lowest kept score, so torch's cap would have kept it: it fails (torch's 0.2 one, below
    # ONNX's lowest kept score, is still one ONNX's cap cut).
    onnx_side = detections(*kept, ("f", 0.25))
    assert match_detections(torch_side, onnx_side, floor=0.05, cap=3)[1:] == (1, 0.0, 1.0, 0, 1, 0.25)


def test_detector_limits_are_the_models_own_nms_settings():
    from pixelforge.models.detectors import build_detector
    from pixelforge.tasks.common.boxes_export import detector_limits

    rcnn = build_detector("fasterrcnn", num_classes=2, weights="none", img_size=64)
    rcnn.roi_heads.nms_thresh, rcnn.roi_heads.detections_per_img = 0.4, 7
    assert detector_limits(rcnn) == (0.4, 7)
    fcos = build_detector("fcos", num_classes=2, weights="none", img_size=64)
    assert detector_limits(fcos) == (fcos.nms_thresh, fcos.detections_per_img) == (0.6, 100)


def test_package_predicts_without_torch(tmp_path, detect_run, cli):
    from pixelforge.tasks.detect.export import export_package

    run, root = detect_run
    package = export_package(run, tmp_path / "pkg")
    image = sorted((root / "images" / "val").glob("*.png"))[1]
    code = ("import sys; sys.modules['torch'] = None\n"  # any torch import now fails
            "from pixelforge.data.images import load_rgb\n"
            "from pixelforge.deploy.runtime import load_runtime, predict_package\n"
            f"boxes = [load_runtime({str(package)!r}).predict_images([load_rgb({str(image)!r})])[0]['detections']]\n"
            f"found = predict_package({str(package)!r}, [{str(image)!r}], {str(tmp_path / 'out')!r}, score_threshold=0.0)\n"
            "import json; print(json.dumps([len(boxes), len(boxes[0]), found[0]['detections'][:1]]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    count, n_boxes, first = json.loads(done.stdout.strip().splitlines()[-1])
    assert count == 1 and isinstance(n_boxes, int)
    if first:
        assert first[0]["label"] in ("box", "disc") and len(first[0]["box"]) == 4
    assert (tmp_path / "out" / f"{image.stem}.png").is_file()
    assert isinstance(json.loads((tmp_path / "out" / "predictions.json").read_text()), list)
    # the keys every task's rows have, the same from the run and the package (the run's rows lacked "summary")
    check_run_and_package(cli, run, package, [image], tmp_path / "keys", "detect", "annotated", "--score-threshold", "0")


def _fp16_parts(path) -> tuple[set, set]:
    """(op types computing in fp16, op types of the control-flow subgraphs' nodes) of an fp16 package's model."""
    import onnx

    model = onnx.load(str(path))
    halves = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16}
    fp16_ops = {n.op_type for n in model.graph.node if any(i in halves for i in n.input)}
    sub_types = {t.data_type for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH
                 for t in a.g.initializer}
    return fp16_ops, sub_types


def test_fp16_keeps_box_decoding_and_nms_fp32_runs_on_cpu_and_is_judged_by_shown_boxes_and_map(
        tmp_path, detect_run, cli, monkeypatch):
    """fp16 of the whole detector no longer loaded (the converter retyped the If subgraphs of box decoding and NMS);
    the mixed model keeps them float32. The tiny run's detections are near-ties around 0.3 that fp16 rounding
    reorders: they are borderline (under 0.3 + FP16_BORDERLINE), so the export passes as it is."""
    import onnx

    import pixelforge
    from pixelforge.tasks.common import boxes_export

    run, root = detect_run
    package = pixelforge.export(run, tmp_path / "pkg", fp16=True)
    assert json.loads((package / "package.json").read_text())["models"] == {"fp32": "model.onnx",
                                                                           "fp16": "model.fp16.onnx"}
    report = json.loads((package / "parity.json").read_text())["fp16"]
    assert report["passed"] and report["map_drop"] <= 0.005 and report["matched"] > 0
    assert report["max_unmatched_score"] < 0.4 and report["shown_score"] == 0.4
    assert report["max_score_diff"] <= 0.02 and report["min_matched_iou"] >= 0.95
    assert (report["required_iou"], report["score_tolerance"]) == (0.95, 0.02)
    fp16_ops, sub_types = _fp16_parts(package / "model.fp16.onnx")
    assert {"Conv", "Gemm"} <= fp16_ops and sub_types <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}
    images = sorted((root / "images" / "val").glob("*.png"))
    done = cli("predict", package, *images, "--precision", "fp16", "--score-threshold", "0", "--json",
               "--out", tmp_path / "out")  # ONNX Runtime's CPU provider runs it, torch-free
    assert done.returncode == 0, done.stderr
    assert [len(p["detections"]) for p in json.loads(done.stdout)] == [100] * len(images)
    monkeypatch.setattr(boxes_export, "FP16_MAX_MAP_DROP", -1.0)  # unreachable: the fp16 check must refuse
    with pytest.raises(PixelforgeError, match=r"export refused: fp16 parity failed \(\d+ detections without a twin "
                                              r"\(PyTorch made \d+, the fp16 model \d+\), the highest scoring .*; "
                                              r"mAP .* vs PyTorch's"):
        pixelforge.export(run, tmp_path / "refused", fp16=True)
    assert not (tmp_path / "refused").exists()


def test_fp16_twins_allow_fp16_sized_differences_and_only_clear_lonely_detections_refuse():
    """fp16's looser twin bounds (IoU 0.95, score 0.02) pair what float32's (0.99, 1e-3) would call two different
    detections; a lonely detection refuses fp16 only when it scores clearly above the shown threshold."""
    import numpy as np

    from pixelforge.tasks.common.boxes_export import FP16_TOLERANCE, check_fp16_boxes, match_detections

    torch_side = (np.array([[10, 10, 50, 50]], np.float32), np.array([0.9], np.float32), np.array([1]))
    fp16_side = (np.array([[10, 10, 50, 51]], np.float32), np.array([0.89], np.float32), np.array([1]))  # IoU 0.976
    assert match_detections(torch_side, fp16_side, floor=0.05)[:2] == (0, 2)
    assert match_detections(torch_side, fp16_side, floor=0.05, tol=FP16_TOLERANCE)[:2] == (1, 0)
    report = {"torch_map": 0.6, "onnx_map": 0.6, "torch_map50": 0.9, "onnx_map50": 0.9, "unmatched": 1,
              "torch_detections": 10, "onnx_detections": 10}
    assert check_fp16_boxes({**report, "max_unmatched_score": 0.37})["passed"]  # borderline: may flip either way
    with pytest.raises(PixelforgeError, match=r"the highest scoring 0\.450 \(allowed under 0\.4\)"):
        check_fp16_boxes({**report, "max_unmatched_score": 0.45})
