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


def test_evaluate_keeps_the_user_s_edits_and_refreshes_only_the_measured_sections(tiny_run, tmp_path):
    """The card says "edit the prose sections to fit your use"; `evaluate` rewrote the whole file and lost them."""
    import shutil

    import pixelforge

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    shutil.rmtree(run / "eval-test")
    write_model_card(run)
    card = (run / "model_card.md").read_text()
    assert "On the **test** split" not in card
    intended = card.index("## Intended use")
    edited = (card[:intended] + "## Intended use\n\nOnly for the shapes demo at our lab.\n\n## Our notes\n\nkeep me\n\n"
              + card[card.index("## Data"):])
    (run / "model_card.md").write_text(edited)
    metrics = pixelforge.evaluate(run).metrics
    after = (run / "model_card.md").read_text()
    assert "Only for the shapes demo at our lab." in after and "## Our notes\n\nkeep me" in after
    assert "Sorting images like those in" not in after  # the generated intended use stays replaced by the user's
    assert f"On the **test** split ({metrics['num_images']} images)" in after  # the Metrics section is fresh
    assert after.index("## Our notes") < after.index("## Data") < after.index("## Metrics")


def test_an_unedited_card_is_replaced_whole_and_an_edited_one_merged(tmp_path):
    from pixelforge.runs.card_file import card_text, is_edited, sections, write_card

    path = tmp_path / "model_card.md"
    first = "# Card\n\nby pixelforge\n\n## Use\n\ngenerated use\n\n## Metrics\n\nacc 0.5\n"
    write_card(path, first, ("Metrics",))
    assert not is_edited(path.read_text()) and card_text(path) == first
    write_card(path, first.replace("generated use", "new use").replace("0.5", "0.6"), ("Metrics",))
    assert "new use" in path.read_text() and "acc 0.6" in path.read_text()  # nobody edited it: replaced whole
    path.write_text(path.read_text().replace("new use", "my use"))
    assert is_edited(path.read_text())
    write_card(path, first.replace("0.5", "0.7") + "\n## Compute\n\n3 s\n", ("Metrics", "Compute"))
    merged = path.read_text()
    assert "my use" in merged and "generated use" not in merged and "acc 0.7" in merged
    assert [heading for heading, _ in sections(merged)] == ["", "Use", "Metrics", "Compute"]  # new one appended
    assert is_edited(merged)  # stays the user's card: a later write merges again
    write_card(path, first.replace("0.5", "0.8"), ("Metrics",))
    assert "my use" in path.read_text() and "acc 0.8" in path.read_text()


def test_an_exported_package_s_card_carries_no_signature_and_the_result_is_its_path(tiny_run, tmp_path):
    from pathlib import Path

    import numpy as np
    from PIL import Image

    import pixelforge

    package = pixelforge.export(tiny_run, out=tmp_path / "package")
    card = (package / "model_card.md").read_text()  # a classifier's ExportResult is a path, as other tasks' Path
    assert "## Export settings" in card and "sha256" not in card
    assert "sha256 of the text above" in (tiny_run / "model_card.md").read_text()
    assert Path(package) == package.package_dir
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "black.png")
    (row,) = pixelforge.predict(package, [tmp_path / "black.png"])
    assert row["label"] in {"circle", "square", "star", "triangle"}


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
