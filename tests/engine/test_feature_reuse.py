"""The linear path's shortcuts stay exact: the cached ONNX graph gives the same features as a fresh export, and the
report and calibration that reuse the training's validation features score what the eager model would."""

import json

import pytest
import torch

import pixelforge
from pixelforge.models.classifier import build_classifier
from pixelforge.tasks.classify import features, inference
from pixelforge.tasks.classify.features import FeatureExtractor, backbone_key, fast_engines


def _backbone(seed: int = 0):
    torch.manual_seed(seed)
    return build_classifier("simple_cnn", 3, "none").backbone.eval()


def test_second_extractor_loads_the_cached_graph_without_exporting(monkeypatch):
    backbone, x = _backbone(), torch.rand(3, 3, 32, 32)
    first = FeatureExtractor(backbone, engine="auto")
    expected = first(x)
    assert first.name == fast_engines()[0], first.reason

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the graph was cached")

    monkeypatch.setattr(features, "export_onnx", no_export)
    second = FeatureExtractor(backbone, engine="auto")
    torch.testing.assert_close(second(x), expected)
    assert second.name == fast_engines()[0]


def test_cache_key_follows_weights_and_size():
    x32, x64 = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 64, 64)
    a, b = _backbone(0), _backbone(1)
    assert backbone_key(a, x32) == backbone_key(a, torch.rand(5, 3, 32, 32))  # the batch size does not matter
    assert backbone_key(a, x32) != backbone_key(b, x32)
    assert backbone_key(a, x32) != backbone_key(a, x64)


def test_damaged_cache_file_is_exported_again():
    from pixelforge.data.builtin import cache_root

    backbone, x = _backbone(2), torch.rand(2, 3, 32, 32)
    path = cache_root() / "onnx-features" / f"{backbone_key(backbone, x)}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an onnx graph")
    extractor = FeatureExtractor(backbone, engine="auto")
    with torch.inference_mode():
        torch.testing.assert_close(extractor(x), backbone(x), rtol=1e-4, atol=1e-4)
    assert extractor.name == fast_engines()[0] and path.read_bytes() != b"not an onnx graph"


def test_graph_outputs_the_pooled_map_only_when_the_features_are_its_mean():
    """The cached graph's `map` (the report's CAM source, lever L22) is the eager target layer's output and pools to
    the features; a backbone whose Grad-CAM layer is not the pooled one (Lite0 at 64 px: blocks.4) gets none."""
    from pixelforge.explain.cam import find_target_layer

    backbone, x = _backbone(3), torch.rand(4, 3, 32, 32)
    assert features.cached_map_graph(backbone, 32) is None  # nothing cached yet, and nothing exported here
    FeatureExtractor(backbone, engine="auto")(x)
    graph = features.cached_map_graph(backbone, 32)
    assert graph is not None and graph.has_map
    pooled, maps = graph.features_and_maps(x)
    layer = find_target_layer(backbone, 32)[1]
    saved = []
    handle = layer.register_forward_hook(lambda module, inputs, output: saved.append(output))
    with torch.no_grad():
        eager = backbone(x)
    handle.remove()
    torch.testing.assert_close(pooled, eager, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(maps, saved[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(maps.mean((2, 3)), pooled, rtol=1e-4, atol=1e-5)
    lite0 = build_classifier("tf_efficientnet_lite0", 2, "none").backbone.eval()
    assert features.pooled_map_layer(lite0, torch.rand(1, 3, 64, 64)) is None
    assert features.pooled_map_layer(lite0, torch.rand(1, 3, 128, 128)) is lite0.bn2


def test_report_and_calibration_reuse_the_validation_features(shapes_dir, tmp_path, monkeypatch):
    # Class folders without a test split (as hymenoptera): the report scores the val split the training cached.
    data = tmp_path / "data"
    for image in sorted((shapes_dir / "train").rglob("*.png"))[::4]:
        (data / image.parent.name).mkdir(parents=True, exist_ok=True)
        (data / image.parent.name / image.name).symlink_to(image)
    reused = []
    original = inference.CachedFeatures.logits

    def spy(self, model, samples):
        result = original(self, model, samples)
        reused.append(result is not None)
        return result

    monkeypatch.setattr(inference.CachedFeatures, "logits", spy)
    graphs = []
    cached_map_graph = features.cached_map_graph
    monkeypatch.setattr(features, "cached_map_graph",
                        lambda *args: graphs.append(cached_map_graph(*args)) or graphs[-1])
    run = pixelforge.train(str(data), out=str(tmp_path / "run"), model="simple_cnn", weights="none",
                           img_size=32, epochs=2, strategy="linear", feature_views=1, quiet=True).run_dir
    assert reused == [True, True]  # calibration, then the report's evaluation
    report_metrics = json.loads((run / "eval-val" / "metrics.json").read_text())
    assert len(graphs) == 1 and graphs[0] is not None  # the report's gallery ran through the ONNX graph (L22)
    monkeypatch.setattr(inference.CachedFeatures, "logits", original)
    monkeypatch.setenv("PIXELFORGE_FEATURE_ENGINE", "eager")  # eager logits, eager Grad-CAM and faithfulness
    eager = pixelforge.evaluate(run, out=tmp_path / "eager-eval")  # a fresh process's path: the backbone runs again
    assert graphs[-1] is None
    assert report_metrics["accuracy"] == eager.metrics["accuracy"]
    assert report_metrics["confusion_matrix"] == eager.metrics["confusion_matrix"]
    assert report_metrics["ece"] == pytest.approx(eager.metrics["ece"], abs=1e-4)
    fast_faith, eager_faith = report_metrics["faithfulness"], eager.metrics["faithfulness"]
    for key in ("deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc"):
        assert fast_faith[key] == pytest.approx(eager_faith[key], abs=1e-3), key


def test_cached_features_are_used_only_for_the_same_images(tmp_path):
    from pixelforge.data.sources import Sample

    head = torch.nn.Linear(4, 2)
    model = torch.nn.Module()
    model.head = head
    samples = [Sample(tmp_path / f"{i}.png", "a") for i in range(3)]
    cached = inference.CachedFeatures([s.path for s in samples], torch.rand(3, 4))
    torch.testing.assert_close(cached.logits(model, samples), head(cached.features))
    assert cached.logits(model, samples[::-1]) is None
    assert cached.logits(model, samples[:2]) is None


def test_a_new_run_never_sees_the_previous_runs_validation_features(monkeypatch):
    """One process trains many runs (tune, benchmarks); a continual step must not report on stale features."""
    from types import SimpleNamespace

    from pixelforge.tasks.classify import ClassifyTask
    from pixelforge.tasks.classify.continual import setup as continual_setup

    task = ClassifyTask()
    task.cached_val = inference.CachedFeatures(["a.png"], torch.zeros(1, 4))
    monkeypatch.setattr(continual_setup, "build_continual_setup", lambda *args: "continual setup")
    assert task.build_setup(SimpleNamespace(continue_from="RUN"), None, [], None, None) == "continual setup"
    assert task.cached_val is None
