"""The model card's parameter and FLOP counts are kept per timm backbone, size and library versions (lever L27):
the second run does not trace the network again, and a damaged cache file only costs a recount."""

from pixelforge.models import catalog


def test_timm_counts_are_cached_and_a_damaged_cache_is_recounted(monkeypatch):
    from pixelforge.data.builtin import cache_root

    calls = []
    real = catalog.count_flops
    monkeypatch.setattr(catalog, "count_flops", lambda model, size: calls.append(size) or real(model, size))
    first = catalog.model_size("tf_efficientnet_lite0", 7, 64)
    assert catalog.model_size("tf_efficientnet_lite0", 7, 64) == first and calls == [64]
    assert first[0] > 3 and first[1] > 0  # Lite0: ~3.4 M parameters with a 7-class head
    catalog.model_size("tf_efficientnet_lite0", 7, 96)  # another size is another count
    assert calls == [64, 96]
    path = cache_root() / "model-sizes.json"
    path.write_text("{not json")
    assert catalog.model_size("tf_efficientnet_lite0", 7, 64) == first and calls == [64, 96, 64]


def test_pixelforge_networks_are_counted_each_time(monkeypatch):
    calls = []
    real = catalog.count_flops
    monkeypatch.setattr(catalog, "count_flops", lambda model, size: calls.append(size) or real(model, size))
    assert catalog.model_size("simple_cnn", 4, 32) == catalog.model_size("simple_cnn", 4, 32)
    assert calls == [32, 32]
