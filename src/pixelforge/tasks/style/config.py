"""The options of fast style transfer (`--task style`, on top of `pixelforge.config.RunConfig`)."""

from __future__ import annotations

from pydantic import Field
from typing import Literal

from pixelforge.config import RunConfig


class StyleConfig(RunConfig):
    task: Literal["style"] = "style"
    style: str = Field("", description="the style image (PNG/JPEG) the network learns to paint like")
    loss_net: str = Field("tf_efficientnet_lite0", description="loss network, tf_efficientnet_lite0|1|2 "
                                                               "(bundled) or vgg19 (needs loss_net_weights)")
    loss_net_weights: str | None = Field(None, description="state-dict file for the loss network (vgg19)")
    feature_transform: Literal["none", "softmax", "softmax-deep"] = Field(
        "none", description="none | softmax (SWAG, Wang et al. 2021: a softmax over each loss-network layer's "
                            "activations before the Gram matrices and the content comparison) | softmax-deep (only "
                            "the two deepest style layers); `stylize RUN` measures with the run's choice")
    content_weight: float = Field(1.0, ge=0, description="weight of the content loss")
    style_weight: float = Field(3.0, ge=0, description="weight of the style (Gram) loss (3: scores as 10 does on c + 10 s and keeps the photo)")
    tv_weight: float = Field(1e-2, ge=0, description="weight of the total-variation loss")
    style_layer_weights: list[float] | None = Field(
        [1.0, 1.0, 1.0, 3.0, 3.0], description="one weight per style layer in training (a weighted mean; "
        "1,1,1,3,3 counts the two deepest 3x, where the network falls furthest behind optimisation); None counts "
        "them alike. Validation and `stylize` count them alike")
    style_size: int | None = Field(512, ge=16, description="the style image's longer side in px (512: as "
                                                           "the comparison reads it; None: 2 x img_size)")
    content_size: int = Field(384, ge=16, description="content photos' shorter side before the img_size "
                                                      "crops (the scale the network learns to paint at)")
    width: int = Field(16, ge=4, description="channels of the transformer's first layer (Johnson: 32)")
    noise_channels: int = Field(0, ge=0, le=16, description="input channels of a fixed noise tile beside the "
                                 "photo (Ulyanov et al.'s texture networks), so the network can paint texture in flat "
                                 "areas; 0: the photo alone (runs from before the option)")
    residual_blocks: int = Field(5, ge=1, description="residual blocks of the transformer")
    max_images: int | None = Field(None, ge=2, description="use at most this many content images")
