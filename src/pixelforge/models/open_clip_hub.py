"""Loading a pretrained CLIP through open_clip, offline: `create_model_and_transforms(name, pretrained=FILE)`.

Nothing is downloaded at run time. A pretrained tag (`--clip ViT-B-32 --clip-weights openai`) is looked up in the
local Hugging Face cache and open_clip's URL cache only; when it is not there the error names the file to fetch on
a connected machine, at once, instead of open_clip's download attempts and retries.
"""

from __future__ import annotations

import os
from pathlib import Path

from pixelforge.errors import PixelforgeError
from pixelforge.models.prompts import imagenet_templates
from pixelforge.models.weights import not_a_checkpoint
from pixelforge.models.zeroshot import ZeroShotModel

HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def default_tag(open_clip, name: str) -> str | None:
    tags = open_clip.list_pretrained_tags_by_model(name)
    return "openai" if "openai" in tags else (tags[0] if tags else None)


def _hub_file(hub: str) -> tuple[str, str]:
    """open_clip's `hf_hub` entry as (repo, file): "org/model/" names the repo only, "org/model/file.bin" a file."""
    if hub.endswith("/"):
        return hub.rstrip("/"), ""
    return os.path.split(hub)


def cached_weights(pretrained_cfg: dict) -> str | None:
    """The tag's weights file if a previous download left it on this machine (no network)."""
    hub = pretrained_cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = _hub_file(hub)
        for name in ([filename] if filename else []) + list(HF_WEIGHT_FILES):
            found = try_to_load_from_cache(repo, name)
            if isinstance(found, str) and Path(found).is_file():
                return found
    url = pretrained_cfg.get("url", "")
    if url:
        local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if local.is_file():
            return str(local)
    return None


def _where_to_get(pretrained_cfg: dict) -> str:
    hub = pretrained_cfg.get("hf_hub", "")
    if hub:
        repo, filename = _hub_file(hub)
        return f"{filename or HF_WEIGHT_FILES[1]} from https://huggingface.co/{repo}"
    return pretrained_cfg.get("url", "the weights file")


def resolve(name: str, weights: str | None) -> tuple[str, str, dict]:
    """(open_clip model name, local weights file (None: in a local-dir: folder), preprocess/quick-gelu options) for
    `--clip` and `--clip-weights`; a one-line error when anything would need the network."""
    from pixelforge.models.clip import open_clip

    if name.startswith("hf-hub:"):
        raise PixelforgeError(f"--clip {name}: hub models need the network; download the repository on a connected "
                              f"machine and pass --clip local-dir:FOLDER")
    if name.startswith("local-dir:"):  # open_clip's own folder format: open_clip_config.json beside the weights
        folder = Path(name[len("local-dir:"):])
        if not (folder / "open_clip_config.json").is_file():
            raise PixelforgeError(f"--clip {name}: {folder / 'open_clip_config.json'} not found")
        if weights:
            raise PixelforgeError(f"--clip {name}: the folder holds its weights; leave out --clip-weights")
        return name, None, {}
    if name.endswith(".json"):
        config = Path(name)
        if not config.is_file():
            raise PixelforgeError(f"--clip {name}: model config file not found")
        open_clip.add_model_config(config)  # registers the config under its file name's stem
        if config.stem not in open_clip.list_models():
            raise PixelforgeError(f"{config}: not an open_clip model config (needs embed_dim, vision_cfg, text_cfg)")
        name = config.stem
    elif name not in open_clip.list_models():
        import difflib

        close = difflib.get_close_matches(name, open_clip.list_models(), n=3)
        raise PixelforgeError(f"--clip {name}: not an open_clip model"
                              + (f"; did you mean {', '.join(close)}?" if close else "; see open_clip.list_models()"))
    if weights and Path(weights).expanduser().is_file():
        return name, str(Path(weights).expanduser()), {}
    tag = weights or default_tag(open_clip, name)
    pretrained_cfg = open_clip.get_pretrained_cfg(name, tag) if tag else {}
    if not pretrained_cfg:
        raise PixelforgeError(f"--clip-weights {weights or '(none)'}: not a file, and not a pretrained tag of {name} "
                              f"(tags: {', '.join(open_clip.list_pretrained_tags_by_model(name)) or 'none'})")
    found = cached_weights(pretrained_cfg)
    if found is None:
        raise PixelforgeError(f"--clip {name} ({tag}): weights are not on this machine and downloads are off; fetch "
                              f"{_where_to_get(pretrained_cfg)} on a connected machine and pass --clip-weights FILE")
    options = {"force_quick_gelu": bool(pretrained_cfg.get("quick_gelu")), "image_mean": pretrained_cfg.get("mean"),
               "image_std": pretrained_cfg.get("std")}
    return name, found, options


def load_open_clip(name: str, weights: str | None, device: str = "cpu") -> ZeroShotModel:
    """A pretrained open_clip model ready for zero-shot classification, from local files only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from pixelforge.models.clip import open_clip

    model_name, path, options = resolve(name, weights)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=path, device=device, **{k: v for k, v in options.items() if v})
    except Exception as exc:  # noqa: BLE001 - whatever open_clip's loader raises on a file: one line below
        # A file that is not a checkpoint at all (a corrupt download, the wrong file) fails inside torch.load or
        # safetensors, not in load_state_dict: it was a 40-line traceback, whose advice (weights_only=False) a
        # user of the command cannot take.
        if not_a_checkpoint(exc):
            raise PixelforgeError(f"{path}: not a PyTorch or safetensors weights file (corrupt, cut short or the "
                                  f"wrong file); pass the open_clip {model_name} state dict") from None
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise PixelforgeError(f"{path}: cannot load as open_clip {model_name} weights ({first})") from None
    model.eval()
    return ZeroShotModel(model, open_clip.get_tokenizer(model_name), preprocess, imagenet_templates(),
                         f"{model_name} ({path})", device)
