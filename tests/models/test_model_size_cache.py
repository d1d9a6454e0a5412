"""The model card's parameter and FLOP counts are kept per timm backbone, size and library versions (lever L27):
the second run does not trace the network again, and a damaged cache file only costs a recount."""

from types import SimpleNamespace

from pixelforge.models import catalog
from pixelforge.tasks.classify.card import _model_size


def _counting(monkeypatch) -> list:
    calls = []
    real = catalog.count_flops
    monkeypatch.setattr(catalog, "count_flops", lambda model, size: calls.append(size) or real(model, size))
    return calls


def test_timm_counts_are_cached_and_a_damaged_cache_is_recounted(monkeypatch):
    from pixelforge.data.builtin import cache_root

    calls = _counting(monkeypatch)
    lite0 = lambda size: SimpleNamespace(model="tf_efficientnet_lite0", img_size=size)  # noqa: E731
    first = _model_size(lite0(64), 7)
    assert _model_size(lite0(64), 7) == first and calls == [64]
    assert first == catalog.model_size("tf_efficientnet_lite0", 7, 64) and first[0] > 3  # Lite0: ~3.4 M parameters
    _model_size(lite0(96), 7)  # another size is another count
    assert calls == [64, 64, 96]
    (cache_root() / "model-sizes.json").write_text("{not json")
    assert _model_size(lite0(64), 7) == first and calls == [64, 64, 96, 64]


def test_pixelforge_networks_are_counted_each_time(monkeypatch):
    calls = _counting(monkeypatch)
    cfg = SimpleNamespace(model="simple_cnn", img_size=32)
    assert _model_size(cfg, 4) == _model_size(cfg, 4)
    assert calls == [32, 32]
