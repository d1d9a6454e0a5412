"""Every run writes model_card.md: data, setup, metrics with intervals, fairness, limitations, compute."""

from __future__ import annotations

import json

from pixelforge.tasks.classify.card import peak_memory, write_model_card


def test_every_run_writes_a_model_card_with_all_sections(tiny_run):
    card = (tiny_run / "model_card.md").read_text()
    for heading in ("## Intended use", "## Data", "## Training setup", "## Metrics", "## Fairness across groups",
                    "## Known limitations", "## Compute"):
        assert heading in card
    assert "| circle | " in card and "| **total** |" in card  # counts per class and split
    assert "On the **test** split" in card and "95% interval" in card
    assert "No group attribute (`group`)" in card


def test_compute_is_measured_at_the_end_of_training_and_kept(tiny_run):
    compute = json.loads((tiny_run / "summary.json").read_text())["compute"]
    assert compute["params_m"] > 0.5 and compute["gflops_per_image"] > 0
    assert compute["process_peak_rss_mb"] > 50 and compute["images_per_s"] > 0 and compute["wall_seconds"] > 0
    card = (tiny_run / "model_card.md").read_text()
    assert f"{compute['params_m']} M" in card and "GFLOPs per image" in card


def test_rewriting_a_card_later_keeps_the_measured_compute(tiny_run):
    before = json.loads((tiny_run / "summary.json").read_text())
    path = write_model_card(tiny_run)
    assert path == tiny_run / "model_card.md"
    assert json.loads((tiny_run / "summary.json").read_text()) == before
    assert f"{before['compute']['wall_seconds']} s" in path.read_text()


def test_evaluate_rewrites_the_card_with_the_test_split_s_figures(tiny_run, tmp_path):
    """Only the newer tasks' cards (denoise, compress, ...) were rewritten by `evaluate`: a classifier's card kept
    what it said before (here: the validation split's figures) after the test split was scored."""
    import shutil

    import pixelforge

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    shutil.rmtree(run / "eval-test")  # a run whose card was written before any test evaluation
    write_model_card(run)
    assert "On the **test** split" not in (run / "model_card.md").read_text()
    metrics = pixelforge.evaluate(run).metrics
    card = (run / "model_card.md").read_text()
    assert f"On the **test** split ({metrics['num_images']} images)" in card
    assert f"| accuracy | {metrics['accuracy']:.4f} |" in card


def test_peak_memory_reports_resident_megabytes():
    assert peak_memory()["process_peak_rss_mb"] > 10


def test_the_card_names_the_data_without_the_trainer_s_full_path(tiny_run):
    """config.yaml keeps the data's absolute path (for resuming); the card, which travels with exported models,
    showed it too: a home directory on every shared model."""
    import yaml

    from pixelforge.data.sources import card_name

    data = yaml.safe_load((tiny_run / "config.yaml").read_text())["data"]
    card = (tiny_run / "model_card.md").read_text()
    assert data.startswith("/") and data not in card
    assert f"`{card_name(data)}`" in card and card_name(data).count("/") == 1
