"""The contrastive image-text run's part of its model card (tasks/common/card.py): zero-shot accuracy (prompt
ensemble, one template, the bare label, chance) and retrieval recall from the run's own evaluation."""

from __future__ import annotations

from pathlib import Path

from pixelforge.tasks.common.card import CardFacts, encoder_weights_notes, fmt, latest_evaluation, md_table, \
    small_set_note


def _evaluation(found) -> list[str]:
    if found is None:
        return ["Not evaluated yet: run `pixelforge evaluate RUN`."]
    folder, m = found
    rows = [["recall@1 image → text", fmt(m["recall1_image_to_text"])],
            ["recall@1 text → image", fmt(m["recall1_text_to_image"])]]
    rows += [[f"recall@5 {a} → {b}", fmt(m[key])] for key, a, b in
             (("recall5_image_to_text", "image", "text"), ("recall5_text_to_image", "text", "image")) if key in m]
    text = [f"The **{m['split']}** split ({m['num_images']} image-caption pairs), best checkpoint "
            f"(`{folder}/metrics.json`).", ""]
    if "zeroshot_accuracy" in m:
        rows = [["zero-shot accuracy, prompt ensemble", fmt(m["zeroshot_accuracy"])],
                ["zero-shot accuracy, one template", fmt(m["zeroshot_accuracy_single_template"])],
                ["zero-shot accuracy, bare label", fmt(m["zeroshot_accuracy_bare_label"])],
                ["chance", fmt(m["chance"])], *rows]
        if "held_out_accuracy" in m:
            rows.insert(4, ["zero-shot accuracy on labels never in a training caption", fmt(m["held_out_accuracy"])])
        text[0] += (f" Zero-shot: {m['zeroshot_images']} single-object images, each labelled by the closest of "
                    f"{m['zeroshot_labels']} labels.")
    return text + md_table(["metric", "value"], rows)


def card_facts(run: Path, cfg, summary: dict) -> CardFacts:
    found = latest_evaluation(run)
    notes = ["Its text encoder knows only the words of its training captions: a label with other words is read "
             "through the words it knows, or as unknown.",
             "Zero-shot labels are guesses among the labels it is given: an image of none of them still gets one.",
             f"Trained at {cfg.img_size} px on image-caption pairs like the training data; other domains score worse."]
    if found:
        m = found[1]
        if "zeroshot_accuracy" in m and m["zeroshot_accuracy"] <= m["chance"]:
            notes.append("On this evaluation zero-shot accuracy was not above chance: train further before use.")
        notes += small_set_note(m.get("zeroshot_images", m["num_images"]), "zero-shot evaluation")
    return CardFacts(
        title="image-text embedding (CLIP, zero-shot labels)", does="Embeds images and captions in one space "
        "(contrastive, as CLIP), so images can be labelled by class names given only at use (zero-shot) and searched "
        "by text.",
        model=[["architecture", f"image tower `{cfg.model}` (weights: {cfg.weights}, strategy {cfg.strategy}, "
                                f"{cfg.image_proj} projection), text transformer width {cfg.text_width}, "
                                f"{cfg.text_layers} layer(s), {cfg.text_heads} heads, embedding {cfg.embed_dim}"]],
        evaluation=_evaluation(found),
        intended_use=["Labelling or searching images like the training data by short English phrases "
                      "(`pixelforge zeroshot IMAGES --run RUN --labels \"a,b\"`).",
                      "Out of scope: decisions about people, labels far from the training captions' words."],
        limitations=notes, weights=encoder_weights_notes(cfg.model, cfg.weights, "image tower"))
