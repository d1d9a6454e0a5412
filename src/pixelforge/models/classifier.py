"""A classifier is a pretrained backbone (pooled features) plus a new head: dropout and one linear layer.

`build_classifier` is the one factory (timm's `create_model` pattern). Fine-tuning strategies (`models/finetune.py`)
act on the model's `pretrained_module()` (the backbone) and its `stages()` — the backbone's parameter groups from
input to output — so `gradual` can unfreeze from the top.
"""

from __future__ import annotations


import torch
from torch import nn

from pixelforge.errors import PixelforgeError
from pixelforge.models import weights as weight_io
from pixelforge.models.registry import BackboneSpec, check_img_size, check_weights_option, get_spec  # noqa: F401 - re-exported


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int, dropout: float, spec: BackboneSpec):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, num_classes))
        self.spec = spec
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def pretrained_module(self) -> nn.Module:
        """The backbone: what fine-tuning strategies freeze or slow down (the head is new)."""
        return self.backbone

    def stages(self) -> list[list[nn.Parameter]]:
        """Backbone parameters grouped by stage, input side first (timm's group_matcher where available)."""
        backbone = self.backbone
        if hasattr(backbone, "group_matcher"):
            from timm.models import group_parameters

            named = dict(backbone.named_parameters())
            groups = group_parameters(backbone, backbone.group_matcher(coarse=True))
            return [[named[n] for n in names] for _, names in sorted(groups.items())]
        children = [c for c in backbone.children() if any(True for _ in c.parameters())]
        if len(children) == 1 and len(list(children[0].children())) > 1:
            children = [c for c in children[0].children() if any(True for _ in c.parameters())]
        return [list(c.parameters()) for c in children]


def _build_backbone(spec: BackboneSpec, pretrained: bool) -> tuple[nn.Module, int]:
    if spec.source == "pixelforge":
        from pixelforge.models.simple_cnn import SimpleCNN

        model = SimpleCNN()
        return model, model.num_features
    if spec.source == "nas":
        from pixelforge.models.nas_net import build_nas_backbone

        return build_nas_backbone(spec.name)
    if spec.source == "timm":
        import timm

        bundled = pretrained and weight_io.is_bundled(spec.name)
        try:
            model = timm.create_model(spec.library_name, pretrained=pretrained and not bundled, num_classes=0)
        except Exception as exc:  # noqa: BLE001 - hub/network errors come in many types
            raise weight_io.offline_hint_timm(spec.library_name, exc) from None
        if bundled:
            model.load_state_dict(weight_io.bundled_imagenet_state_dict(model, spec.name))
        # Some timm models (MobileNetV3) add a conv after pooling: the pooled width is then head_hidden_size.
        return model, getattr(model, "head_hidden_size", None) or model.num_features
    import torchvision

    weights = torchvision.models.get_model_weights(spec.library_name).DEFAULT if pretrained else None
    try:
        model = torchvision.models.get_model(spec.library_name, weights=weights)
    except Exception as exc:  # noqa: BLE001
        raise weight_io.offline_hint_torchvision(spec.library_name, weights.url, exc) from None
    return _strip_torchvision_head(model)


def _strip_torchvision_head(model: nn.Module) -> tuple[nn.Module, int]:
    if isinstance(getattr(model, "fc", None), nn.Linear):
        features = model.fc.in_features
        model.fc = nn.Identity()
        return model, features
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Sequential) and isinstance(classifier[-1], nn.Linear):
        features = classifier[-1].in_features
        classifier[-1] = nn.Identity()
        return model, features
    raise PixelforgeError(f"cannot find the classification head of torchvision model {type(model).__name__}")


def build_classifier(model: str, num_classes: int, weights: str = "imagenet", dropout: float = 0.2) -> Classifier:
    """Build backbone `model` with `weights` (imagenet | none | a file) and a fresh `num_classes` head.

    Example:
        >>> build_classifier("simple_cnn", num_classes=3, weights="none").head[1].out_features
        3
    """
    spec = get_spec(model)
    check_weights_option(weights)
    pretrained = weights == "imagenet" and spec.source not in ("pixelforge", "nas")
    # Building and loading weights are hundreds of tiny tensor operations: on one thread they are never slower,
    # and with other processes on the cores, OpenMP threads waiting for each other made them 3x slower (0.5 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        backbone, num_features = _build_backbone(spec, pretrained)
        if weights not in ("imagenet", "none"):
            weight_io.load_into_backbone(backbone, weight_io.read_weights_file(weights), str(weights), model)
        return Classifier(backbone, num_features, num_classes, dropout, spec)
    finally:
        torch.set_num_threads(threads)


def restore_classifier(model: str, num_classes: int, dropout: float, state: dict[str, torch.Tensor]) -> Classifier:
    """The classifier `build_classifier(model, num_classes, "none", dropout)` would give, with `state` loaded.

    Built on the meta device and given the checkpoint's own tensors (`assign=True`): no random initialisation to
    overwrite and no copy. On two busy cores the copy alone took 0.66 s wall of every `load_run` (lever L20 in
    docs/performance.md). A module with tensors the state does not hold (non-persistent buffers) is built as before.

    Example:
        >>> state = build_classifier("simple_cnn", 3, "none").state_dict()
        >>> restore_classifier("simple_cnn", 3, 0.2, state).head[1].weight.is_meta
        False
    """
    with torch.device("meta"):
        restored = build_classifier(model, num_classes, "none", dropout)
    restored.load_state_dict(state, assign=True)
    if any(t.is_meta for t in (*restored.parameters(), *restored.buffers())):
        restored = build_classifier(model, num_classes, "none", dropout)
        restored.load_state_dict(state)
    return restored

