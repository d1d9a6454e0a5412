"""The options of image captioning (on top of `pixelforge.config.RunConfig`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pixelforge.config import RunConfig


class CaptionConfig(RunConfig):
    task: Literal["caption"] = "caption"
    max_caption_words: int = Field(24, ge=2, description="longer captions are cut in training; the decoding limit")
    min_word_count: int = Field(1, ge=1, description="words seen fewer times in training captions become <unk>")
    feature_stride: int = Field(8, description="stride of the places attention chooses from (8 or 16): 8 gives "
                                                 "(img_size/8)^2 finer places, 16 (img_size/16)^2")
    context_logits: bool = Field(True, description="add word logits read straight from the attended features to "
                                                   "the LSTM's (colour and shape words from what is looked at)")
    lstm_input: Literal["where", "context"] = Field(
        "where", description="what the LSTM reads beside the previous word: where it looked (the attended x, y) or "
                             "SAT's gated attended features (what it saw)")
    deep_output: Literal["h", "h+context"] = Field(
        "h", description="what the LSTM's word layer reads: h alone, or h and the attended features (SAT)")
    attention: Literal["content", "where"] = Field(
        "content", description="what steers attention from word to word: the places' whole features (SAT), or "
                               "their x, y only plus a saliency no word changes (docs/captioning.md: +4 points "
                               "on canonical captions, -10 on all captions)")
    attention_query: Literal["h+word", "h"] = Field(
        "h+word", description="what steers the attention of each word: h and the word just said (default; the "
                              "shape word then looks at the object whose colour was just named), or h alone (SAT)")
    init_state: Literal["mean", "zero"] = Field("mean", description="h0, c0 from the mean feature or from zeros")
    embed_dim: int = Field(128, ge=8, description="word embedding width")
    hidden_dim: int = Field(256, ge=8, description="LSTM width")
    attention_dim: int = Field(128, ge=8, description="additive attention width")
    decoder_dropout: float = Field(0.3, ge=0, lt=1, description="dropout before the word classifier")
    attention_penalty: float = Field(0.02, ge=0, description="weight of the doubly stochastic attention penalty "
                                                             "(Show, Attend and Tell eq. 14; SAT used 1)")
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="label smoothing of the word loss")
    scheduled_sampling: float = Field(0.0, ge=0, le=1, description="probability of feeding the model's own "
                                                                   "previous word in training")
    word_dropout: float = Field(0.4, ge=0, lt=1, description="probability of feeding <unk> instead of the previous "
                                                             "word in training (leans the decoder on the image)")
    beam: int = Field(1, ge=1, le=10, description="beam width for evaluate/predict/export (1: greedy, the best "
                                                  "measured on the built-in set, docs/captioning.md)")
    length_penalty: float = Field(0.0, ge=0, description="GNMT length-penalty exponent of beam search (0: the most "
                                                         "probable caption; 0.6 chose longer rewordings)")
    monitor: Literal["bleu4", "loss"] = Field("bleu4", description="what picks best.ckpt: val BLEU-4 (greedy, max) "
                                                                   "or val loss (min)")
