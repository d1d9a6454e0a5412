"""Every explanation method on a tiny model: right shape, in [0, 1], not constant; target layers for every backbone."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from pixelforge.errors import PixelforgeError
from pixelforge.explain.cam import find_target_layer
from pixelforge.explain.methods import METHODS, check_method, heatmaps
from pixelforge.models.classifier import build_classifier
from pixelforge.models.registry import list_backbones


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Models this small run many times faster on one thread when other processes keep the cores busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_classifier("simple_cnn", 3, weights="none").eval()


@pytest.mark.parametrize("method", METHODS)
def test_each_method_gives_a_non_constant_map_per_image(tiny_model, method):
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    maps = heatmaps(tiny_model, x, [0, 2], method)
    assert maps.shape == (2, 32, 32)
    assert maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1
    for heat in maps:
        assert heat.std() > 1e-3, f"{method} gave a constant map"


def test_heatmaps_work_after_inference_mode_conversions(tiny_model):
    # run_inference converts the model to channels_last inside inference_mode; gradients must still flow after.
    with torch.inference_mode():
        tiny_model.to(memory_format=torch.channels_last)
    maps = heatmaps(tiny_model, torch.randn(1, 3, 32, 32), [1], "gradcam")
    assert maps.shape == (1, 32, 32)


EXPECTED_LAYERS = {
    "tf_efficientnet_lite0": "backbone.bn2", "tf_efficientnet_lite1": "backbone.bn2",
    "tf_efficientnet_lite2": "backbone.bn2", "efficientnet_b0": "backbone.bn2", "resnet18": "backbone.layer4",
    "resnet50": "backbone.layer4", "convnext_nano": "backbone.stages", "inception_v3": "backbone.Mixed_7c",
    "mobilenetv3_large_100": "backbone.blocks", "vgg16_bn": "backbone.features", "simple_cnn": "backbone.stages",
    "tv_resnet18": "backbone.layer4", "tv_resnet50": "backbone.layer4", "tv_efficientnet_b0": "backbone.features",
    "tv_mobilenet_v3_large": "backbone.features", "tv_vgg16_bn": "backbone.features",
}


@pytest.mark.parametrize("name", list_backbones())
def test_target_layer_is_the_last_spatial_feature_map_of_every_backbone(name):
    with torch.device("meta"):  # architecture only: instant, no weights
        model = build_classifier(name, 2, weights="none")
    layer_name, layer = find_target_layer(model, 224)
    assert layer_name == EXPECTED_LAYERS[name]
    assert layer is model.get_submodule(layer_name)


def test_target_layer_follows_the_input_size():
    # At 64 px an EfficientNet's last map is 2x2: the explanation comes from the last 4x4 stage instead.
    with torch.device("meta"):
        model = build_classifier("tf_efficientnet_lite0", 2, weights="none")
    assert find_target_layer(model, 64)[0] == "backbone.blocks.4"
    assert find_target_layer(model, 128)[0] == "backbone.bn2"


def test_unknown_method_is_a_one_line_user_error():
    with pytest.raises(PixelforgeError, match=re.escape("--method 'gradcam+' is not a method; choose one of gradcam,")):
        check_method("gradcam+")


@pytest.mark.parametrize("model_name,size", [("simple_cnn", 32), ("tf_efficientnet_lite0", 64), ("resnet18", 64)])
def test_our_grad_cam_equals_pytorch_grad_cams(model_name, size):
    """explain/cam.py writes Grad-CAM out (importing pytorch_grad_cam costs a second of every run); it must give the
    library's maps: same layer, same targets, same scaling and resize."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from pixelforge.explain.cam import grad_cam

    torch.manual_seed(0)
    model = build_classifier(model_name, 4, weights="none").eval()
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(2))
    targets = [0, 3, 1]
    layer = find_target_layer(model, size)[1]
    ours = grad_cam(model, x, targets, layer)
    cam = GradCAM(model=model, target_layers=[layer])
    try:
        theirs = cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(t) for t in targets])
    finally:
        cam.activations_and_grads.release()
    assert ours.shape == theirs.shape == (3, size, size)
    assert np.abs(ours - theirs).max() < 1e-4
    assert ours.std() > 0.01  # not a constant map that would equal anything


@pytest.mark.parametrize("model_name,size", [("simple_cnn", 32), ("tf_efficientnet_lite0", 128)])
def test_linear_head_cam_equals_grad_cam_at_the_pooled_map(model_name, size):
    """The report draws Grad-CAM as CAM on ONNX Runtime's pooled map (lever L22): for global average pooling and a
    linear head, both must give the same maps (here the target layer is the pooled one: 4x4 at these sizes)."""
    from pixelforge.explain.cam import grad_cam, linear_head_cam

    torch.manual_seed(0)
    model = build_classifier(model_name, 4, weights="none").eval()
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(2))
    targets = [0, 3, 1]
    layer = find_target_layer(model, size)[1]
    saved = []
    handle = layer.register_forward_hook(lambda module, inputs, output: saved.append(output.detach()))
    with torch.no_grad():
        pooled = model.backbone(x)
    handle.remove()
    torch.testing.assert_close(pooled, saved[0].mean((2, 3)), rtol=1e-5, atol=1e-6)  # the map is what is pooled
    eager = grad_cam(model, x, targets, layer)
    cam = linear_head_cam(saved[0], model.head[-1].weight, targets, (size, size))
    assert cam.shape == eager.shape == (3, size, size)
    assert np.abs(cam - eager).max() < 1e-5
    assert eager.std() > 0.01


def test_blend_gives_pytorch_grad_cams_overlay_pixels():
    from pytorch_grad_cam.utils.image import show_cam_on_image

    from pixelforge.explain.overlay import blend

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (24, 40, 3)).astype(np.uint8)
    heat = rng.random((24, 40)).astype(np.float32)
    expected = show_cam_on_image(image.astype(np.float32) / 255, heat, use_rgb=True, image_weight=0.55)
    assert np.array_equal(blend(image, heat), expected)


def test_the_explanation_figure_says_which_way_its_faithfulness_scores_should_go(tmp_path, monkeypatch):
    from pixelforge.explain import overlay

    figures = []
    monkeypatch.setattr(overlay.plt, "close", figures.append)
    scores = {"deletion_auc": 0.1, "random_deletion_auc": 0.3, "insertion_auc": 0.6, "random_insertion_auc": 0.4}
    overlay.save_explanation(np.zeros((32, 32, 3), np.uint8), np.random.default_rng(0).random((32, 32)),
                             tmp_path / "x.png", "gradcam", "cat", 0.9, "cat", scores=scores)
    heat_axes = figures[0].axes[1]
    label = heat_axes.get_xlabel()
    assert "deletion AUC 0.100" in label and "lower is better" in label and "higher is better" in label
    assert figures[0].axes[-1].get_ylabel() == "relative importance"  # the colour bar
