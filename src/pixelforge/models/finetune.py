"""Fine-tuning strategies, once for every model: which parameters learn, at which learning rate, and which
batch-norm statistics stay fixed.

The transfer-learning recipes of Yosinski et al. 2014 and ULMFiT's gradual unfreezing (Howard & Ruder 2018):
    linear   the pretrained part frozen (batch-norm statistics too), only the new parts learn
    full     everything learns; the pretrained part at `lr * backbone_lr_mult` (discriminative learning rates)
    gradual  starts as linear, then unfreezes one pretrained stage per `unfreeze_every` epochs, from the top

What a strategy needs from a model is two things, asked by duck typing:
    model.pretrained_module()  the part that starts from pretrained weights (backbone, encoder); all the rest
                               (head, decoder, FPN) is new and always learns
    model.stages()             that part's parameters by stage, input side first (gradual unfreezes the last first)
`Classifier` and `Segmenter` define both. torchvision's detectors, which pixelforge builds but does not subclass,
get theirs from `models.detectors` (`encoder_of`, `encoder_stages`).

Example:
    >>> from pixelforge.models.classifier import build_classifier
    >>> model = build_classifier("simple_cnn", num_classes=3, weights="none")
    >>> apply_strategy(model, "gradual", epoch=1)  # one stage, the top one, learns
    1
    >>> sorted({g["lr"] for g in param_groups(model, "full", 1e-3, 0.1, 0.05)})
    [0.0001, 0.001]
"""

from __future__ import annotations

from torch import nn

def pretrained_module(model: nn.Module) -> nn.Module:
    """The part of `model` that starts from pretrained weights: what `linear` freezes, `backbone_lr_mult` slows."""
    named = getattr(model, "pretrained_module", None)
    if named is not None:
        return named()
    from pixelforge.models.detectors import encoder_of  # torchvision detectors: we cannot give them the method

    return encoder_of(model)


def stages(model: nn.Module) -> list[list[nn.Parameter]]:
    """The pretrained part's parameters by stage, input side first (gradual unfreezing starts from the last)."""
    named = getattr(model, "stages", None)
    if named is not None:
        return named()
    from pixelforge.models.detectors import encoder_stages

    return encoder_stages(model)


def pretrained_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list(pretrained_module(model).parameters())


def new_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Everything not pretrained (head, decoder, FPN), in the model's own order."""
    pretrained = {id(p) for p in pretrained_parameters(model)}
    return [p for p in model.parameters() if id(p) not in pretrained]


def param_groups(model: nn.Module, strategy: str, lr: float, backbone_lr_mult: float,
                 weight_decay: float) -> list[dict]:
    """Optimizer groups: the new parts at `lr`, the pretrained part (unless `linear`) at `lr * backbone_lr_mult`.

    Biases and norm weights get no weight decay (the usual timm/torchvision recipe): decaying them towards zero
    only fights the normalisation. Under `linear` the pretrained part gets no group, since it never learns; under
    `gradual` it has one from the start, so the stages unfrozen later are already in the optimizer.
    """
    def split_decay(params: list[nn.Parameter], group_lr: float) -> list[dict]:
        return [{"params": [p for p in params if p.ndim > 1], "lr": group_lr, "weight_decay": weight_decay},
                {"params": [p for p in params if p.ndim <= 1], "lr": group_lr, "weight_decay": 0.0}]

    groups = split_decay(pretrained_parameters(model), lr * backbone_lr_mult) if strategy != "linear" else []
    groups += split_decay(new_parameters(model), lr)
    return [g for g in groups if g["params"]]


def apply_strategy(model: nn.Module, strategy: str, epoch: int = 0, unfreeze_every: int = 1) -> int:
    """Set `requires_grad` for `strategy` at `epoch`; return how many pretrained stages are trainable.

    It depends on the epoch alone (no state), so a resumed run unfreezes exactly as the interrupted one did.
    """
    parts = stages(model)
    for param in new_parameters(model):
        param.requires_grad_(True)
    for param in pretrained_parameters(model):  # parameters no stage lists stay frozen unless fully fine-tuning
        param.requires_grad_(strategy == "full")
    trainable = {"full": len(parts), "linear": 0}.get(strategy, min(len(parts), epoch // unfreeze_every))
    for index, params in enumerate(parts):
        for param in params:
            param.requires_grad_(index >= len(parts) - trainable)
    return trainable


def freeze_frozen_norms(model: nn.Module, pretrained_norms: bool = False) -> None:
    """Put batch-norm layers whose parameters are all frozen in eval mode (call it after `model.train()`).

    A frozen layer's running statistics would otherwise still follow the new data, and the frozen weights were
    learnt for the old statistics. `pretrained_norms=True` also fixes every batch norm of the pretrained part,
    trainable or not: detection batches are a few images, too few for good statistics (torchvision and detectron2
    freeze them too).
    """
    fixed = {id(m) for m in pretrained_module(model).modules()} if pretrained_norms else set()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if id(module) in fixed or (params and not any(p.requires_grad for p in params)):
                module.eval()
