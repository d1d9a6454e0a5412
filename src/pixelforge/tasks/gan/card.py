"""The GAN run's part of its model card (tasks/common/card.py): FID/KID beside the real-vs-real floor, diversity,
class coverage and conditional accuracy from the run's own evaluation (`RUN/eval`); its samples are synthetic."""

from __future__ import annotations

from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.tasks.common.card import CardFacts, bundled_weights_note, fmt, latest_evaluation, md_table


def fid_key(m: dict) -> str:
    return next(k for k in m if k.startswith("fid_") and k not in ("fid_real_floor", "fid_over_floor"))


def _evaluation(found) -> list[str]:
    if found is None:
        return ["Not evaluated yet: run `pixelforge evaluate RUN`."]
    folder, m = found
    fid = fid_key(m)
    kid = fid.replace("fid_", "kid_")
    rows = [[fid, fmt(m[fid]), f"real-vs-real floor {fmt(m['fid_real_floor'])} ({fmt(m['fid_over_floor'], 2)}x)"],
            [kid, fmt(m[kid]), f"floor {fmt(m['kid_real_floor'])}"],
            ["diversity", fmt(m["diversity"]), "of the real images' (1.0: as varied)"]]
    if m.get("class_coverage") is not None:
        rows.append(["class coverage", fmt(m["class_coverage"]), "share of classes the judge finds among the samples"])
    if m.get("conditional_accuracy") is not None:
        rows.append(["conditional accuracy", fmt(m["conditional_accuracy"]),
                     f"samples judged as the class asked for ({m['samples_per_class']} per class)"])
    text = [f"{m['n']} samples of the EMA generator against real images (`{folder}/metrics.json`). Features: "
            f"{m['extractor']}. Lower FID/KID is better.", "", *md_table(["figure", "value", "reading"], rows)]
    if m.get("per_class_accuracy"):
        text += ["", *md_table(["class", "conditional accuracy"],
                               [[c, fmt(v)] for c, v in m["per_class_accuracy"].items()])]
    if m.get("classifier"):
        text += ["", f"Judge: {m['classifier']}; its accuracy on real held-out images "
                     f"{fmt(m.get('classifier_real_accuracy'))}."]
    return text


def card_facts(run: Path, cfg, summary: dict) -> CardFacts:
    classes = rd.read_json(run / "classes.json")
    found = latest_evaluation(run, ("eval",))
    notes = ["Every image it makes is synthetic: label generated images as such wherever they are shown or shared.",
             "It can only make images like its training data, and may reproduce training images closely; do not "
             "train it on images you may not redistribute.",
             f"Images are {cfg.img_size} px; FID/KID here use EfficientNet-Lite0 features and are not comparable "
             "with published Inception FIDs." if not cfg.fid_weights else
             f"Images are {cfg.img_size} px."]
    if found:
        notes += [f"Evaluation warning: {w}." for w in found[1].get("warnings", [])]
        if found[1]["n"] < 1000:
            notes.append(f"FID from {found[1]['n']} samples is biased upwards and noisy; compare runs at the same n.")
    weights = ([f"FID/KID features: the Inception-v3 weights file `{Path(cfg.fid_weights).name}` the user gave."]
               if cfg.fid_weights else [bundled_weights_note("tf_efficientnet_lite0", "FID/KID feature extractor (used in "
                                                             "evaluation only, not part of the generator)")])
    conditional = cfg.conditional and len(classes) > 1
    return CardFacts(
        title="image generator (GAN)", does=("Generates new images of a chosen class: "
                                             f"{', '.join(classes)}." if conditional else "Generates new images like "
                                             "its training data from random noise."),
        model=[["architecture", f"DCGAN-style generator and discriminator, width {cfg.width}, latent {cfg.latent_dim}, "
                                f"{'conditional' if conditional else 'unconditional'}, {cfg.loss} loss"],
               ["sampled with", f"the EMA generator (decay {cfg.ema_decay})"]],
        evaluation=_evaluation(found),
        intended_use=["Synthetic images for experiments, data augmentation studies and teaching.",
                      "Out of scope: passing samples off as real photos, and generating images of real people."],
        limitations=notes, weights=weights,
        parameters={"generator": "generator.", "discriminator": "discriminator."},
        data=[["images", f"{summary.get('train_images', '?')} training images; validation FID against "
                         f"{summary.get('val_images', '?')} real reference images (fid_n {cfg.fid_n}, seed {cfg.seed})"],
              ["split", "none: a GAN learns from every image; FID compares samples with real ones"]],
        recipe={"optimizer": f"Adam, lr {summary.get('lr', cfg.lr)} (generator), {cfg.lr_d or cfg.lr} "
                             f"(discriminator), {cfg.d_steps} discriminator step(s) per generator step; "
                             f"DiffAugment {cfg.diffaugment}"})
