"""Every registered backbone builds and runs; weights load from the bundle or a file, and wrong ones say why."""

import pytest
import torch
from safetensors.torch import save_file

from pixelforge.errors import PixelforgeError
from pixelforge.models.catalog import describe_backbones
from pixelforge.models.classifier import build_classifier, check_img_size
from pixelforge.models.registry import BACKBONES, get_spec, list_backbones

REQUIRED = ["vgg16_bn", "resnet18", "resnet50", "inception_v3", "efficientnet_b0", "tf_efficientnet_lite0",
            "tf_efficientnet_lite1", "tf_efficientnet_lite2",
            "mobilenetv3_large_100", "simple_cnn"]


def test_required_backbones_are_registered():
    assert set(REQUIRED) <= set(list_backbones())


@pytest.mark.parametrize("name", list_backbones())
def test_backbone_builds_and_classifies_at_its_min_size(name):
    size = max(32, BACKBONES[name].min_size)
    with torch.device("meta"):  # architecture only: fast, no memory, no downloads
        model = build_classifier(name, num_classes=3, weights="none").eval()
        logits = model(torch.zeros(2, 3, size, size))
    assert logits.shape == (2, 3)
    assert model.stages(), "gradual unfreezing needs stages"


def test_catalog_reports_params_and_flops():
    rows = {r["name"]: r for r in describe_backbones(224)}
    lite0 = rows["tf_efficientnet_lite0"]
    assert 3.0 < lite0["params_m"] < 4.8 and 0.6 < lite0["gflops"] < 0.9
    assert rows["vgg16_bn"]["gflops"] > 20 * lite0["gflops"]


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(PixelforgeError, match=r"unknown backbone 'resnet5' \(a --model or --encoder value\): did you mean.*resnet50"):
        get_spec("resnet5")


def test_image_size_too_small_is_rejected():
    with pytest.raises(PixelforgeError, match="inception_v3: it needs at least 75"):
        check_img_size("inception_v3", 64)


@pytest.mark.parametrize("name,size", [("tf_efficientnet_lite0", 224), ("tf_efficientnet_lite1", 240),
                                       ("tf_efficientnet_lite2", 260)])
def test_bundled_lite_weights_recognise_imagenet_photos(name, size):
    import timm
    from skimage import data

    from pixelforge.models.weights import bundled_imagenet_state_dict

    model = timm.create_model(name)
    model.load_state_dict(bundled_imagenet_state_dict(model, name))
    model.eval()
    predictions = []
    for image in (data.chelsea(), data.coffee()):
        x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        predictions.append(int(model((x - 0.5) / 0.5).argmax()))
    assert predictions == [285, 967]  # ImageNet: Egyptian cat, espresso


def test_imagenet_default_is_offline_for_lite0():
    model = build_classifier("tf_efficientnet_lite0", num_classes=2, weights="imagenet")
    import timm

    reference = timm.create_model("tf_efficientnet_lite0", num_classes=0)
    assert not torch.equal(model.backbone.conv_stem.weight, reference.conv_stem.weight)


def test_offline_imagenet_download_fails_with_a_useful_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PixelforgeError, match="--weights PATH/model.safetensors"):
        build_classifier("resnet18", num_classes=2, weights="imagenet")


def test_weights_from_safetensors_and_pth_files(tmp_path):
    source = build_classifier("simple_cnn", num_classes=2, weights="none")
    save_file(source.backbone.state_dict(), tmp_path / "w.safetensors")
    torch.save({"model": source.state_dict()}, tmp_path / "run.ckpt")
    for path in (tmp_path / "w.safetensors", tmp_path / "run.ckpt"):
        loaded = build_classifier("simple_cnn", num_classes=5, weights=str(path))
        first = next(iter(source.backbone.state_dict()))
        assert torch.equal(loaded.backbone.state_dict()[first], source.backbone.state_dict()[first])


def test_weights_for_another_model_are_rejected(tmp_path):
    other = build_classifier("resnet18", num_classes=2, weights="none")
    save_file(other.backbone.state_dict(), tmp_path / "resnet.safetensors")
    with pytest.raises(PixelforgeError, match="do not match model 'simple_cnn'"):
        build_classifier("simple_cnn", num_classes=2, weights=str(tmp_path / "resnet.safetensors"))
    with pytest.raises(PixelforgeError, match="weights file not found"):
        build_classifier("simple_cnn", num_classes=2, weights=str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("name", ["junk.pth", "junk.safetensors"])
def test_a_weights_file_that_is_not_a_checkpoint_is_one_line_naming_it(tmp_path, name):
    """torch.load's refusal is a paragraph (weights_only advice, an issue link): it was pasted whole into the error."""
    (tmp_path / name).write_text("not an image, not a checkpoint")
    with pytest.raises(PixelforgeError, match=f"{name}: cannot read weights") as error:
        build_classifier("simple_cnn", num_classes=2, weights=str(tmp_path / name))
    assert "\n" not in str(error.value)


def test_a_frozen_random_backbone_is_warned_about_once_and_a_trainable_one_is_not(caplog):
    from pixelforge.tasks.classify import warn_random_frozen_backbone
    from pixelforge.tasks.config import build_config

    caplog.set_level("WARNING", logger="pixelforge")
    for options in ({"model": "simple_cnn"}, {"weights": "none"}):  # strategy: the default, linear
        warn_random_frozen_backbone(build_config(data="digits", **options))
    assert [("simple_cnn has no pretrained weights" in r.getMessage(), "--weights none" in r.getMessage())
            for r in caplog.records] == [(True, False), (False, True)]
    assert all("add --strategy full" in r.getMessage() for r in caplog.records)
    caplog.clear()
    warn_random_frozen_backbone(build_config(data="digits", model="simple_cnn", strategy="full"))
    warn_random_frozen_backbone(build_config(data="digits"))  # Lite0 with its bundled ImageNet weights
    assert not caplog.records
