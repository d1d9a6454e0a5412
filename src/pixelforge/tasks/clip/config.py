"""The options of contrastive image-text training (on top of `pixelforge.config.RunConfig`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pixelforge.config import RunConfig

# The run's default prompt ensemble: the caption wordings of the built-in shapes set (data/captions/shapes.py), as
# CLIP's ImageNet templates are wordings of its web captions. "a small {}" and "a large {}" average the size out.
SHAPES_TEMPLATES = ["a {}", "a small {}", "a large {}", "there is a {}", "a picture of a {}", "one {}",
                    "a {} on its own"]


class ClipConfig(RunConfig):
    task: Literal["clip"] = "clip"
    embed_dim: int = Field(128, ge=8, description="width of the joint image-text embedding")
    text_width: int = Field(128, ge=8, description="text transformer width")
    text_layers: int = Field(2, ge=1, description="text transformer layers")
    text_heads: int = Field(4, ge=1, description="text transformer attention heads (divide text_width)")
    max_caption_words: int = Field(16, ge=2, description="longer captions are cut (the text context is this + 2)")
    min_word_count: int = Field(1, ge=1, description="words seen fewer times in training captions become <unk>")
    image_proj: Literal["linear", "mlp"] = Field("mlp", description="image projection after the pooled features "
                                                                   "(open_clip's timm_proj)")
    templates_file: str | None = Field(None, description="text file of the run's zero-shot prompt templates, one {} "
                                                         "a line (default: the shapes caption wordings)")
