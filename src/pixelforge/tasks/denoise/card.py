"""The denoising run's part of its model card (tasks/common/card.py): PSNR/SSIM beside the noisy input and the
classical denoisers, from the run's own evaluation; the one noise model it learned."""

from __future__ import annotations

from pathlib import Path

from pixelforge.tasks.common.card import CardFacts, bundled_weights_note, fmt, latest_evaluation, md_table, \
    small_set_note


def _evaluation(found) -> list[str]:
    if found is None:
        return ["Not evaluated yet: run `pixelforge evaluate RUN`."]
    folder, m = found
    rows = [["noisy input", fmt(m["psnr_noisy"], 2), fmt(m["ssim_noisy"])]]
    rows += [[name, fmt(b["psnr"], 2), fmt(b["ssim"])] for name, b in m["baselines"].items()]
    rows.append(["**this model**", fmt(m["psnr"], 2), fmt(m["ssim"])])
    return [f"Whole images of the **{m['split']}** split ({m['num_images']} images), noise `{m['noise']}` added with "
            f"a fixed seed, best checkpoint (`{folder}/metrics.json`):", "",
            *md_table(["method", "PSNR (dB)", "SSIM"], rows)]


def card_facts(run: Path, cfg, summary: dict) -> CardFacts:
    found = latest_evaluation(run)
    notes = [f"Trained on one synthetic noise model, `{cfg.noise}`: other levels or kinds (real sensor noise, "
             "compression artefacts, blur) are outside what it learned and may be removed badly or not at all.",
             f"Trained on {cfg.img_size} px crops of {'grayscale' if cfg.channels == 1 else 'colour'} images like "
             "the training data; other content may denoise worse."]
    if found:
        m = found[1]
        best = max(m["baselines"].items(), key=lambda item: item[1]["psnr"], default=None)
        if best and best[1]["psnr"] > m["psnr"]:
            notes.append(f"On this evaluation the classical {best[0]} scored higher PSNR ({fmt(best[1]['psnr'], 2)} "
                         f"dB) than this model ({fmt(m['psnr'], 2)} dB): prefer it until the model is trained further.")
        if summary.get("val_images") and m["split"] == "val" and m["num_images"] < summary["val_images"]:
            notes.append(f"Scored on the first {m['num_images']} of the {summary['val_images']} validation images "
                         "(the report's limit); `pixelforge evaluate RUN` scores them all.")
        notes += small_set_note(m["num_images"])
    unet = cfg.model == "unet"
    weights = [bundled_weights_note(cfg.encoder, "U-Net's encoder")] if unet and cfg.weights == "imagenet" else []
    return CardFacts(
        title="image denoiser", does=f"Removes `{cfg.noise}` noise from photos: a noisy image in, a clean estimate out.",
        model=[["architecture", f"`{cfg.model}`" + (f" on encoder `{cfg.encoder}` (weights: {cfg.weights})" if unet
                                                      else f", depth {cfg.depth}, {cfg.features} features")],
               ["input / output", f"{cfg.channels}-channel image, values in [0, 1]; the same size out"]],
        evaluation=_evaluation(found),
        intended_use=[f"Cleaning photos like those in the training data that carry noise like `{cfg.noise}`.",
                      "Out of scope: other noise, medical or forensic images where an invented detail matters "
                      "(a denoiser's output is an estimate, not the true image)."],
        limitations=notes, weights=weights)
