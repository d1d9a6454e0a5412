"""A small CLIP (Radford et al. 2021) built from open_clip's own classes: a timm image tower (our pretrained Lite0,
average-pooled, then a linear or MLP projection: open_clip's `TimmModel`) and open_clip's causal text transformer.

Being an `open_clip.CLIP`, a trained model answers `encode_image`/`encode_text` exactly as a hub CLIP does, so
zero-shot classification (models/zeroshot.py) and open_clip's `ClipLoss` treat both alike.

The text tower reads our word-level caption tokenizer (data/captions/tokenizer.py: <pad>=0, <start>, <end>=2)
instead of open_clip's 49,408-token BPE: captions of a small dataset use a few hundred words, and a BPE table would
be 49,408 x width parameters of which almost none ever train. The <end> token's output is the text embedding
(open_clip's `pool_type="eos"`), the role the highest BPE id plays in OpenAI's CLIP.
"""

from __future__ import annotations

from torch import nn

from pixelforge.errors import PixelforgeError
from pixelforge.models import weights as weight_io
from pixelforge.models.registry import get_spec

try:
    import open_clip
except ImportError:  # the `clip` extra
    raise PixelforgeError("CLIP needs open_clip: pip install 'pixelforge[clip]' (open_clip_torch)") from None


class PixelCLIP(open_clip.CLIP):
    """open_clip's CLIP plus what fine-tuning strategies ask of a model (models/finetune.py): the pretrained part is
    the image trunk; the projection, the text tower and the temperature are new."""

    def pretrained_module(self) -> nn.Module:
        return self.visual.trunk

    def encode_image(self, image, normalize: bool = False):
        """open_clip's, which also reads the trunk's cached pooled features [B, C] (`--strategy linear`): so one
        `model(image, text)` call trains both paths, and DDP, which syncs what its forward ran, sees every step."""
        if image.ndim == 2:
            features = self.visual.head(image)
            return nn.functional.normalize(features, dim=-1) if normalize else features
        return super().encode_image(image, normalize)

    def stages(self) -> list[list[nn.Parameter]]:
        """The trunk's parameters by stage, input side first (timm's coarse group_matcher)."""
        from timm.models import group_parameters

        trunk = self.visual.trunk
        named = dict(trunk.named_parameters())
        groups = group_parameters(trunk, trunk.group_matcher(coarse=True))
        return [[named[n] for n in names] for _, names in sorted(groups.items())]


def clip_model_config(backbone: str, vocab_size: int, context_length: int, embed_dim: int, text_width: int,
                      text_layers: int, text_heads: int, img_size: int, image_proj: str = "linear") -> dict:
    """open_clip's model config (the JSON format of its model_configs/) for our small CLIP."""
    spec = get_spec(backbone)
    if spec.source != "timm":
        raise PixelforgeError(f"--model {backbone}: the CLIP image tower needs a timm backbone "
                              f"(e.g. tf_efficientnet_lite0, resnet18)")
    if text_width % text_heads:
        raise PixelforgeError(f"--text-width {text_width} must be a multiple of --text-heads {text_heads}")
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"timm_model_name": spec.library_name, "timm_model_pretrained": False, "timm_pool": "avg",
                       "timm_proj": image_proj, "image_size": img_size},
        "text_cfg": {"context_length": context_length, "vocab_size": vocab_size, "width": text_width,
                     "heads": text_heads, "layers": text_layers, "pad_id": 0, "eos_id": 2, "pool_type": "eos"},
    }


def build_clip(model_cfg: dict, backbone: str, weights: str = "none"):
    """An `open_clip.CLIP` from `clip_model_config`'s dict; `weights` imagenet|none|file loads the image trunk."""
    model = PixelCLIP(**model_cfg)
    trunk = model.visual.trunk
    if weights == "imagenet":
        if weight_io.is_bundled(backbone):
            trunk.load_state_dict(weight_io.bundled_imagenet_state_dict(trunk, backbone), strict=False)
        else:
            import timm

            spec = get_spec(backbone)
            try:
                pretrained = timm.create_model(spec.library_name, pretrained=True, num_classes=0)
            except Exception as exc:  # noqa: BLE001 - hub/network errors come in many types
                raise weight_io.offline_hint_timm(spec.library_name, exc) from None
            trunk.load_state_dict(pretrained.state_dict(), strict=False)
    elif weights != "none":
        weight_io.load_into_backbone(trunk, weight_io.read_weights_file(weights), weights, backbone)
    return model
