"""The captioning run's part of its model card (tasks/common/card.py): BLEU-1..4, CIDEr-D and attribute match from
the run's own evaluation; its closed vocabulary and the encoder's weights."""

from __future__ import annotations

from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.tasks.common.card import CardFacts, encoder_weights_notes, fmt, latest_evaluation, md_table, \
    small_set_note


def _evaluation(found) -> list[str]:
    if found is None:
        return ["Not evaluated yet: run `pixelforge evaluate RUN`."]
    folder, m = found
    rows = [[f"BLEU-{n}", fmt(m[f"bleu{n}"], 2)] for n in range(1, 5)]
    if "cider" in m:
        rows.append(["CIDEr-D", fmt(m["cider"], 2)])
    if "attribute_match" in m:
        rows.append(["attribute match", fmt(m["attribute_match"])])
    return [f"The **{m['split']}** split ({m['num_images']} images), beam {m.get('beam')}, best checkpoint "
            f"(`{folder}/metrics.json`); BLEU and CIDEr-D on a 0-100 scale, against each image's reference captions.",
            "", *md_table(["metric", "value"], rows)]


def _vocabulary(run: Path) -> int | None:
    path = run / "tokenizer.json"
    return len(rd.read_json(path)["vocab"]) if path.is_file() else None


def card_facts(run: Path, cfg, summary: dict) -> CardFacts:
    found = latest_evaluation(run)
    words = _vocabulary(run)
    notes = [f"Closed vocabulary: it writes only the {words if words else 'training'} words its training captions "
             f"used at least {cfg.min_word_count} time(s), and at most {cfg.max_caption_words} words a caption; "
             "anything else is described with those words or not at all.",
             "Captions say what is likely given the training captions, not what is verified in the image: check them "
             "before they are read as fact (alt text, records).",
             f"Trained at {cfg.img_size} px on images like the training data; other scenes get generic or wrong "
             "captions."]
    if found:
        notes += small_set_note(found[1]["num_images"])
    return CardFacts(
        title="image captioner", does="Writes a short English caption for an image (Show, Attend and Tell: a CNN "
        "encoder, an LSTM decoder with attention).",
        model=[["architecture", f"encoder `{cfg.model}` (weights: {cfg.weights}, strategy {cfg.strategy}), LSTM "
                                f"decoder hidden {cfg.hidden_dim}, embedding {cfg.embed_dim}, attention "
                                f"{cfg.attention} ({cfg.attention_dim})"],
               ["vocabulary", f"{words} words (tokenizer.json)" if words else "tokenizer.json not written yet"],
               ["decoding", f"beam {cfg.beam}, length penalty {cfg.length_penalty}"]],
        evaluation=_evaluation(found),
        intended_use=["Describing images like the training data, in the training captions' words (search, "
                      "drafts of alt text for a person to check).",
                      "Out of scope: unchecked alt text, descriptions of people's identity or traits, other domains."],
        limitations=notes, weights=encoder_weights_notes(cfg.model, cfg.weights, "image encoder"))
