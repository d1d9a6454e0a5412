"""Why did the model say that? Heat maps (Grad-CAM family, gradients), their faithfulness, and overlays.

Modules: `cam` (pytorch-grad-cam methods and automatic target layers), `attribution` (captum), `methods` (one
entry point for all), `faithfulness` (deletion/insertion scores), `overlay` (the PNGs), `gallery` (the report's
Grad-CAM gallery), `commands` (`pixelforge explain`). Nothing here imports torch at package import time.
"""
