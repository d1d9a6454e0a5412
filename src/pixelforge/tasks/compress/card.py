"""The compression run's part of its model card (tasks/common/card.py): bits per pixel, PSNR and BD-rates against
JPEG and WebP from the run's own evaluation (real `.pfc` files), or the training's validation estimate before one."""

from __future__ import annotations

from pathlib import Path

from pixelforge.tasks.common.card import CardFacts, best_epoch_row, fmt, latest_evaluation, md_table, small_set_note

CODECS = {"jpeg": "JPEG", "webp": "WebP"}


def _bd_rate(m: dict, codec: str) -> str:
    value = m.get(f"bd_rate_vs_{codec}")
    return f"{value:+.1f}%" if value is not None else f"n/a ({m.get(f'bd_rate_vs_{codec}_na_reason') or 'not measured'})"


def _evaluation(found, row: dict) -> list[str]:
    if found is None:
        return ["Not evaluated with real files yet: run `pixelforge evaluate RUN` (bpp of `.pfc` files, PSNR, "
                "BD-rate against JPEG and WebP). During training, the best epoch's validation crops gave an "
                f"estimated {fmt(row.get('val_bpp'))} bpp at PSNR {fmt(row.get('val_psnr'), 2)} dB."]
    folder, m = found
    rows = [["bits per pixel (real files)", fmt(m["bpp"])], ["PSNR (dB)", fmt(m["psnr"], 2)],
            ["MS-SSIM", fmt(m.get("ms_ssim"))]]
    for codec, name in CODECS.items():
        if f"{codec}_psnr_at_bpp" in m:
            rows.append([f"{name} PSNR at the same bpp (dB)", fmt(m[f"{codec}_psnr_at_bpp"], 2)])
        if f"bd_rate_vs_{codec}" in m:
            rows.append([f"BD-rate vs {name} (negative: fewer bits)", _bd_rate(m, codec)])
    rows += [["encode / decode CPU time per image (s)", f"{fmt(m.get('encode_cpu_s'), 3)} / {fmt(m.get('decode_cpu_s'), 3)}"]]
    return [f"{m['num_images']} whole images coded to real `.pfc` files (`{folder}/metrics.json`):", "",
            *md_table(["figure", "value"], rows)]


def card_facts(run: Path, cfg, summary: dict) -> CardFacts:
    found = latest_evaluation(run)
    notes = [f"One rate-distortion trade-off (λ = {cfg.lambda_:g}): for smaller or better files train another λ.",
             "Optimised for MSE (PSNR): at low rates it blurs, where JPEG blocks; textures and text may lose detail.",
             f"Trained on {cfg.img_size} px crops of photos like the training data; other content (screenshots, "
             "drawings, medical images) may code worse than a classical codec.",
             "A `.pfc` file decodes only with this model (or its package): keep them together."]
    if found:
        for codec, name in CODECS.items():
            value = found[1].get(f"bd_rate_vs_{codec}")
            if value is not None and value > 0:
                notes.append(f"On this evaluation it needs {value:.1f}% more bits than {name} for the same PSNR.")
        notes += small_set_note(found[1]["num_images"])
    return CardFacts(
        title="learned image codec", does="Compresses photos to `.pfc` files (CompressAI's "
        f"{'scale hyperprior' if cfg.model == 'hyperprior' else 'factorized prior'}) and decodes them back.",
        model=[["architecture", f"`{cfg.model}`, N = {cfg.channels_n}, M = {cfg.channels_m}"],
               ["rate-distortion weight", f"λ = {cfg.lambda_:g} (loss λ·255²·MSE + bpp)"]],
        evaluation=_evaluation(found, best_epoch_row(run, summary)),
        intended_use=["Storing or sending photos like the training data in fewer bytes, where both ends have the "
                      "model.", "Out of scope: archives that must stay readable without pixelforge, and uses that "
                      "need exact pixels (medical, legal evidence): the codec is lossy."],
        limitations=notes,
        recipe={"optimizer": f"Adam (no weight decay), lr {summary.get('lr', cfg.lr)} for the networks, "
                             f"{cfg.aux_lr} for the entropy bottleneck's quantiles, {cfg.schedule} schedule, "
                             f"gradient clip {cfg.grad_clip}"},
        data=[["crops", f"{cfg.crops_per_image} random {cfg.img_size} px crop(s) per image per epoch"]])
