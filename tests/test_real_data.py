"""Real photos: fine-tuning the default backbone on hymenoptera (ants vs bees) reaches tutorial accuracy."""

import pytest

import pixelforge


@pytest.mark.slow
def test_linear_lite0_on_hymenoptera_reaches_92_percent(hymenoptera, tmp_path):
    result = pixelforge.train(str(hymenoptera), model="tf_efficientnet_lite0", weights="imagenet",
                              strategy="linear", val_fraction=0.2, seed=0, epochs=10, out=str(tmp_path / "hym"),
                              quiet=True)
    assert result.best_val_accuracy >= 0.92
    assert result.path == "cached-features"
    evaluation = pixelforge.evaluate(result.run_dir)
    assert evaluation.metrics["split"] == "val" and evaluation.accuracy >= 0.92
    predictions = pixelforge.predict(result.run_dir, [str(hymenoptera / "bees")], top_k=2)
    assert sum(p["label"] == "bees" for p in predictions) / len(predictions) > 0.9
