"""Instance segmenters: Mask R-CNN (He et al. 2017) on detection's timm FPN, or torchvision's COCO-pretrained one.

Mask R-CNN is Faster R-CNN plus a mask branch: for each region the box head keeps, a small conv head reads a 14x14
RoIAlign window of the FPN and predicts a 28x28 mask per class; in eval mode torchvision pastes the mask of the
predicted class into the image. So the model here is detection's Faster R-CNN (`models.detectors.faster_rcnn`:
FPN width 64, proposal and sampling counts for a few objects per small image, `min_size = max_size = img_size` so
the model never resizes the images the dataset already sized) with torchvision's mask branch added, narrowed to
the FPN's width (256 channels in torchvision, next to a 256-wide FPN).

Models take a list of float images [3, H, W] in [0, 1] and targets {boxes, labels 1..K, masks uint8 [N, H, W]}; in
train mode they return Faster R-CNN's four losses plus `loss_mask`, in eval mode one {boxes, scores, labels, masks
float [N, 1, H, W] in [0, 1]} dict per image. `weights="coco"` builds torchvision's `maskrcnn_resnet50_fpn_v2` (COCO
box AP 47.4, mask AP 41.8) with new box and mask predictors: far slower, meant for GPUs or transfer from COCO.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

from pixelforge.models import weights as weight_io
from pixelforge.models.detection_backbones import TimmFPN, fpn_extra_block
from pixelforge.models.detectors import (EVAL_SCORE_THRESH, FPN_CHANNELS, anchor_sizes_for, build_encoder,
                                         check_detector_options, faster_rcnn)
from pixelforge.models.detection_backbones import fixed_roi_align
from pixelforge.models.registry import get_spec

INSTANCE_ARCHS = ("maskrcnn",)
COCO_BUILDER = "maskrcnn_resnet50_fpn_v2"
MASK_HEAD_LAYERS = 4  # conv layers of the mask head, as in the paper and torchvision


def build_mask_rcnn(backbone: str = "tf_efficientnet_lite0", num_classes: int = 1, weights: str = "imagenet",
                    img_size: int = 160, anchor_sizes: list[int] | None = None, min_size: int | None = None,
                    max_size: int | None = None) -> nn.Module:
    """Mask R-CNN for `num_classes` object classes (background not counted).

    Args:
        backbone: a timm encoder name from `pixelforge models` (ignored with weights="coco").
        weights: imagenet (encoder pretrained; tf_efficientnet_lite0 ships with pixelforge) | none | coco
            (torchvision's COCO Mask R-CNN, downloaded once) | a .safetensors/.pth file for the encoder.
        img_size: the longest image side the model sees; min_size/max_size default to it (no internal resize).
        anchor_sizes: object size in pixels at each of the 4 FPN levels (strides 8, 16, 32, 64); None = 2x stride.

    Example:
        >>> model = build_mask_rcnn(num_classes=3, weights="none", img_size=64)
        >>> sorted(model.eval()([torch.rand(3, 64, 48)])[0])  # doctest: +SKIP
        ['boxes', 'labels', 'masks', 'scores']
    """
    check_detector_options("fasterrcnn", backbone, weights, anchor_sizes)
    if weights == "coco":
        return build_coco_mask_rcnn(num_classes, pretrained=True, img_size=img_size, min_size=min_size,
                                    max_size=max_size)
    spec = get_spec(backbone)
    features = TimmFPN(build_encoder(spec, weights), FPN_CHANNELS, fpn_extra_block("fasterrcnn", FPN_CHANNELS))
    common = dict(num_classes=num_classes + 1, min_size=min_size or img_size, max_size=max_size or img_size,
                  image_mean=list(spec.mean), image_std=list(spec.std))
    model = faster_rcnn(features, anchor_sizes_for("fasterrcnn", anchor_sizes), common)
    add_mask_branch(model, FPN_CHANNELS, num_classes + 1)
    return model


def add_mask_branch(model: nn.Module, channels: int, classes: int) -> nn.Module:
    """Give a torchvision Faster R-CNN the mask branch of Mask R-CNN, `channels` wide (classes with background).

    torchvision's `MaskRCNN` class does only this in its constructor (its RoI heads compute masks when these three
    modules are set), so detection's tuned Faster R-CNN becomes a Mask R-CNN without repeating its settings.
    """
    heads = model.roi_heads
    heads.mask_roi_pool = fixed_roi_align(14, model.backbone.body.feature_info.reduction())
    heads.mask_head = MaskRCNNHeads(channels, (channels,) * MASK_HEAD_LAYERS, dilation=1)
    heads.mask_predictor = MaskRCNNPredictor(channels, channels, classes)
    # Small initial logits, as detectron2 initialises its mask predictor: torchvision's Kaiming init starts
    # `loss_mask` near 12 (not ln 2) on our encoder's features, and those first gradients shake the shared FPN.
    nn.init.normal_(heads.mask_predictor.mask_fcn_logits.weight, std=0.001)
    nn.init.zeros_(heads.mask_predictor.mask_fcn_logits.bias)
    return model


def build_coco_mask_rcnn(num_classes: int, pretrained: bool, img_size: int = 320, min_size: int | None = None,
                         max_size: int | None = None) -> nn.Module:
    """torchvision's COCO Mask R-CNN (ResNet-50 FPN v2) with fresh `num_classes` (+ background) box/mask predictors.

    `pretrained=False` builds the same structure without downloading (to load a checkpoint of a coco run).
    """
    import torchvision

    weights = torchvision.models.get_model_weights(COCO_BUILDER).DEFAULT if pretrained else None
    try:
        model = torchvision.models.get_model(COCO_BUILDER, weights=weights, weights_backbone=None,
                                             min_size=min_size or img_size, max_size=max_size or img_size)
    except Exception as exc:  # noqa: BLE001 - URLError, HTTPError, socket errors...
        raise weight_io.offline_hint_torchvision(COCO_BUILDER, weights.url, exc) from None
    heads = model.roi_heads
    heads.box_predictor = FastRCNNPredictor(heads.box_predictor.cls_score.in_features, num_classes + 1)
    mask_in = heads.mask_predictor.conv5_mask.in_channels
    heads.mask_predictor = MaskRCNNPredictor(mask_in, heads.mask_predictor.conv5_mask.out_channels, num_classes + 1)
    heads.score_thresh = EVAL_SCORE_THRESH  # keep what COCO mAP integrates over; predict filters afterwards
    return model


def build_mask_rcnn_for_run(cfg, num_classes: int) -> nn.Module:
    """The structure a run trained (from its run config), without downloading anything: to load its checkpoint."""
    if cfg.weights == "coco":
        return build_coco_mask_rcnn(num_classes, pretrained=False, img_size=cfg.img_size, min_size=cfg.min_size,
                                    max_size=cfg.max_size)
    return build_mask_rcnn(cfg.model, num_classes, "none", cfg.img_size, cfg.anchor_sizes, cfg.min_size,
                           cfg.max_size)


def check_instance_options(arch: str | None, backbone: str, weights: str, anchor_sizes: list[int] | None) -> None:
    """Reject a bad --arch / --model / --weights / anchor_sizes before any work starts (one-line errors)."""
    from pixelforge.errors import PixelforgeError

    if arch not in (None, *INSTANCE_ARCHS):
        raise PixelforgeError(f"--arch {arch!r}: instance segmentation architectures are {', '.join(INSTANCE_ARCHS)}")
    check_detector_options("fasterrcnn", backbone, weights, anchor_sizes)
