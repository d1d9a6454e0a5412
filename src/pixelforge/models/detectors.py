"""Object detectors: torchvision's four detector families on a timm encoder, or torchvision's COCO-pretrained ones.

    fasterrcnn  two-stage: RPN proposals, RoIAlign, box head (Ren et al. 2015; FPN, Lin et al. 2017)
    retinanet   one-stage, anchors and focal loss (Lin et al. 2017)
    fcos        one-stage, anchor-free: per-pixel distances to the box sides (Tian et al. 2019)
    ssdlite     one-stage SSD with depthwise heads, no FPN (Liu et al. 2016; Sandler et al. 2018)

Every model takes a list of float images [3, H, W] in [0, 1] (the transform normalises with the encoder's mean/std)
and targets with labels 1..K (0 is background); in train mode it returns a loss dict, in eval mode one
{boxes, scores, labels} dict per image in input pixel coordinates.

Sizes are chosen for small images on few CPU cores (pixelforge's quickstart: 160 px, 2 cores): FPN width 64,
proposal and sampling counts scaled to a few objects per image, and `min_size = max_size = img_size`, so the
detector's own transform never resizes the images the dataset already sized (longest side == img_size).
`weights="coco"` instead builds torchvision's ResNet-50 (MobileNetV3 for ssdlite) COCO models with a new
`num_classes` predictor; they are much slower and are meant for GPUs or transfer from COCO.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path


from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.models.detection.ssd import SSD

from pixelforge.errors import PixelforgeError
from pixelforge.models import weights as weight_io
from pixelforge.models.detection_backbones import (TimmFPN, TimmSSDFeatures, create_encoder, fixed_roi_align,
                                                   fpn_extra_block)
from pixelforge.models.registry import get_spec

DETECTOR_ARCHS = ("fasterrcnn", "retinanet", "fcos", "ssdlite")
DEFAULT_ARCH = "fasterrcnn"  # the most accurate on the built-in shapes in a quickstart budget (see the report)
FPN_CHANNELS = 64  # 256 in torchvision (for 800 px COCO images); at 64 the FPN and heads cost less than the encoder
# Strides of the levels each family predicts from, and the default object size at each (anchor_sizes).
LEVEL_STRIDES = {"fasterrcnn": (8, 16, 32, 64), "retinanet": (8, 16, 32, 64, 128), "fcos": (8, 16, 32, 64, 128),
                 "ssdlite": (8, 16, 32, 64, 128)}
# Scores kept for evaluation: low, because COCO mAP integrates over the whole precision-recall curve; `predict`
# applies the user's --score-threshold afterwards.
EVAL_SCORE_THRESH = 0.05
COCO_BUILDERS = {"fasterrcnn": "fasterrcnn_resnet50_fpn_v2", "retinanet": "retinanet_resnet50_fpn_v2",
                 "fcos": "fcos_resnet50_fpn", "ssdlite": "ssdlite320_mobilenet_v3_large"}


def build_detector(arch: str, backbone: str = "tf_efficientnet_lite0", num_classes: int = 1, weights: str = "imagenet",
                   img_size: int = 160, anchor_sizes: list[int] | None = None, min_size: int | None = None,
                   max_size: int | None = None) -> nn.Module:
    """Build detector `arch` for `num_classes` object classes (background not counted).

    Args:
        arch: fasterrcnn | retinanet | fcos | ssdlite.
        backbone: a timm encoder name from `pixelforge models` (ignored with weights="coco").
        weights: imagenet (encoder pretrained; tf_efficientnet_lite0 ships with pixelforge) | none | coco
            (torchvision's COCO detector, downloaded once) | a .safetensors/.pth file for the encoder.
        img_size: the longest image side the model sees; min_size/max_size default to it (no internal resize).
        anchor_sizes: object size in pixels at each feature level (see LEVEL_STRIDES); None = 2x the stride
            (the stride itself for fcos, whose sizes set which level learns which boxes).

    Example:
        >>> model = build_detector("fcos", num_classes=3, weights="none", img_size=64)
        >>> model.eval()([torch.rand(3, 64, 48)])[0].keys()  # doctest: +SKIP
        dict_keys(['boxes', 'scores', 'labels'])
    """
    check_detector_options(arch, backbone, weights, anchor_sizes)
    if weights == "coco":
        return build_coco_detector(arch, num_classes, pretrained=True, img_size=img_size, min_size=min_size,
                                   max_size=max_size)
    spec = get_spec(backbone)
    body = build_encoder(spec, weights)
    sizes = anchor_sizes_for(arch, anchor_sizes)
    common = dict(num_classes=num_classes + 1, min_size=min_size or img_size, max_size=max_size or img_size,
                  image_mean=list(spec.mean), image_std=list(spec.std))
    if arch == "ssdlite":
        features = TimmSSDFeatures(body)
        ratios = [[2, 3]] * len(features.out_channels)
        # DefaultBoxGenerator wants relative scales, one per level plus one for the last level's second box.
        scales = [s / img_size for s in sizes] + [min(1.0, 2 * sizes[-1] / img_size)]
        anchors = DefaultBoxGenerator(ratios, scales=scales)
        from torchvision.models.detection.ssdlite import SSDLiteHead

        head = SSDLiteHead(features.out_channels, anchors.num_anchors_per_location(), num_classes + 1,
                           partial(nn.BatchNorm2d, eps=0.001, momentum=0.03))
        return SSD(features, anchors, (img_size, img_size), num_classes + 1, image_mean=common["image_mean"],
                   image_std=common["image_std"], head=head, score_thresh=EVAL_SCORE_THRESH, detections_per_img=100,
                   topk_candidates=200)
    features = TimmFPN(body, FPN_CHANNELS, fpn_extra_block(arch, FPN_CHANNELS))
    if arch == "fasterrcnn":
        return faster_rcnn(features, sizes, common)
    if arch == "retinanet":
        octaves = tuple((s, round(s * 2 ** (1 / 3)), round(s * 2 ** (2 / 3))) for s in sizes)
        anchors = AnchorGenerator(octaves, ((0.5, 1.0, 2.0),) * len(sizes))
        head = RetinaNetHead(FPN_CHANNELS, anchors.num_anchors_per_location()[0], num_classes + 1,
                             norm_layer=partial(nn.GroupNorm, 16))
        return RetinaNet(features, anchor_generator=anchors, head=head, score_thresh=EVAL_SCORE_THRESH,
                         detections_per_img=100, **common)
    anchors = AnchorGenerator(tuple((s,) for s in sizes), ((1.0,),) * len(sizes))
    head = FCOSHead(FPN_CHANNELS, 1, num_classes + 1, num_convs=2)  # 4 in the paper; 2 halves the head's cost
    return FCOS(features, anchor_generator=anchors, head=head, score_thresh=EVAL_SCORE_THRESH,
                detections_per_img=100, **common)


def check_detector_options(arch: str, backbone: str, weights: str, anchor_sizes: list[int] | None) -> None:
    """Reject a bad --arch / --model / --weights / anchor_sizes before any work starts (one-line errors)."""
    from pixelforge.models.classifier import check_weights_option

    if arch not in DETECTOR_ARCHS:
        raise PixelforgeError(f"--arch {arch!r}: detection architectures are {', '.join(DETECTOR_ARCHS)}")
    if weights == "coco":
        return
    check_weights_option(weights)
    spec = get_spec(backbone)
    if spec.source != "timm":
        raise PixelforgeError(f"--model {backbone}: detection needs a timm encoder (e.g. tf_efficientnet_lite0, "
                              f"resnet18, mobilenetv3_large_100), not a {spec.source} model")
    anchor_sizes_for(arch, anchor_sizes)


def faster_rcnn(features: TimmFPN, sizes: list[int], common: dict) -> FasterRCNN:
    anchors = AnchorGenerator(tuple((s,) for s in sizes), ((0.5, 1.0, 2.0),) * len(sizes))
    pool = fixed_roi_align(7, features.body.feature_info.reduction())
    width = 256  # 1024 in torchvision; next to a 64-channel FPN the 1024-wide MLP would cost more than the encoder
    settings = {k: v for k, v in common.items() if k != "num_classes"}  # the predictor sets the classes
    return FasterRCNN(
        features, rpn_anchor_generator=anchors, box_roi_pool=pool, box_head=TwoMLPHead(FPN_CHANNELS * 7 * 7, width),
        box_predictor=FastRCNNPredictor(width, common["num_classes"]),
        # A few objects per small image: hundreds of proposals suffice (2000/1000 in torchvision, made for COCO).
        rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300, rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=100, box_batch_size_per_image=128, box_score_thresh=EVAL_SCORE_THRESH, **settings)


def anchor_sizes_for(arch: str, anchor_sizes: list[int] | None) -> list[int]:
    strides = LEVEL_STRIDES[arch]
    if anchor_sizes is None:
        return list(strides) if arch == "fcos" else [2 * s for s in strides]
    if len(anchor_sizes) != len(strides) or any(int(s) <= 0 for s in anchor_sizes):
        raise PixelforgeError(f"anchor_sizes {list(anchor_sizes)}: {arch} needs {len(strides)} positive sizes in "
                              f"pixels, one per feature level (strides {', '.join(map(str, strides))})")
    return [int(s) for s in anchor_sizes]


def build_encoder(spec, weights: str) -> nn.Module:
    bundled = weights == "imagenet" and weight_io.is_bundled(spec.name)
    try:
        body = create_encoder(spec.library_name, pretrained=weights == "imagenet" and not bundled)
    except Exception as exc:  # noqa: BLE001 - hub/network errors come in many types
        raise weight_io.offline_hint_timm(spec.library_name, exc) from None
    if bundled:
        body.load_state_dict(weight_io.bundled_imagenet_state_dict(body, spec.name))
    elif weights not in ("imagenet", "none"):
        weight_io.load_into_backbone(body, weight_io.read_weights_file(weights), str(weights), spec.name)
    return body


def build_coco_detector(arch: str, num_classes: int, pretrained: bool, img_size: int = 320,
                        min_size: int | None = None, max_size: int | None = None) -> nn.Module:
    """torchvision's COCO detector for `arch` with a fresh `num_classes` (+ background) predictor.

    `pretrained=False` builds the same structure without downloading (to load a checkpoint of a coco run).
    """
    import torchvision
    from torchvision.models import detection as tvd

    name = COCO_BUILDERS[arch]
    weights = torchvision.models.get_model_weights(name).DEFAULT if pretrained else None
    size = {} if arch == "ssdlite" else {"min_size": min_size or img_size, "max_size": max_size or img_size}
    try:
        model = torchvision.models.get_model(name, weights=weights, weights_backbone=None, **size)
    except Exception as exc:  # noqa: BLE001 - URLError, HTTPError, socket errors...
        import torch

        folder = Path(torch.hub.get_dir()) / "checkpoints"
        raise PixelforgeError(
            f"could not download torchvision's COCO weights for {name} ({type(exc).__name__}); offline? download "
            f"{weights.url} on a connected machine and put {weights.url.rsplit('/', 1)[-1]} in {folder}/, or use "
            "--weights imagenet (tf_efficientnet_lite0's ImageNet weights ship with pixelforge)") from None
    classes = num_classes + 1
    if arch == "fasterrcnn":
        predictor = model.roi_heads.box_predictor
        model.roi_heads.box_predictor = FastRCNNPredictor(predictor.cls_score.in_features, classes)
    elif arch == "retinanet":
        old = model.head.classification_head
        model.head.classification_head = tvd.retinanet.RetinaNetClassificationHead(
            model.backbone.out_channels, old.num_anchors, classes, norm_layer=partial(nn.GroupNorm, 32))
    elif arch == "fcos":
        old = model.head.classification_head
        model.head.classification_head = tvd.fcos.FCOSClassificationHead(
            model.backbone.out_channels, old.num_anchors, classes)
    else:
        from torchvision.models.detection import _utils as det_utils
        from torchvision.models.detection.ssdlite import SSDLiteClassificationHead

        channels = det_utils.retrieve_out_channels(model.backbone, (320, 320))
        model.head.classification_head = SSDLiteClassificationHead(
            channels, model.anchor_generator.num_anchors_per_location(), classes,
            partial(nn.BatchNorm2d, eps=0.001, momentum=0.03))
    # Keep every detection the evaluation needs; the training defaults of the COCO recipes drop low scores.
    for owner, attr in ((model, "score_thresh"), (getattr(model, "roi_heads", None), "score_thresh")):
        if owner is not None and hasattr(owner, attr):
            setattr(owner, attr, EVAL_SCORE_THRESH)
    return model


def build_detector_for_run(cfg, num_classes: int) -> nn.Module:
    """The structure a run trained (from its run config), without downloading anything: to load its checkpoint."""
    arch = cfg.arch or DEFAULT_ARCH
    if cfg.weights == "coco":
        return build_coco_detector(arch, num_classes, pretrained=False, img_size=cfg.img_size,
                                   min_size=cfg.min_size, max_size=cfg.max_size)
    return build_detector(arch, cfg.model, num_classes, "none", cfg.img_size, cfg.anchor_sizes, cfg.min_size,
                          cfg.max_size)


def encoder_of(model: nn.Module) -> nn.Module:
    """The pretrained feature extractor: what `linear` freezes and `backbone_lr_mult` slows down.

    Our own detectors: the timm encoder (`model.backbone.body`; the FPN and heads are new). torchvision's COCO
    models: the whole `model.backbone` (encoder + FPN/extra layers were all trained on COCO).
    """
    backbone = model.backbone
    return backbone.body if isinstance(backbone, (TimmFPN, TimmSSDFeatures)) else backbone


def encoder_stages(model: nn.Module) -> list[list[nn.Parameter]]:
    """Encoder parameters by stage, input side first (for gradual unfreezing from the top)."""
    encoder = encoder_of(model)
    blocks = getattr(encoder, "blocks", None)
    if isinstance(blocks, nn.Sequential):  # timm EfficientNet/MobileNet: the stem, then one stage per block group
        stem = [p for name, p in encoder.named_parameters() if not name.startswith("blocks.")]
        return [stem, *[list(b.parameters()) for b in blocks]]
    children = [c for c in encoder.children() if any(True for _ in c.parameters())]
    if len(children) == 1:
        children = [c for c in children[0].children() if any(True for _ in c.parameters())]
    return [list(c.parameters()) for c in children]
