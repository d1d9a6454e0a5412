"""Captioning's attention strips (viz/captions.py): each word's panel is the image under that word's attention."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pixelforge.viz import grid
from pixelforge.viz.captions import attention_overlay, plot_attention_strips


def test_attention_is_red_where_the_word_looked_and_blue_where_it_did_not():
    pixels = np.full((28, 28, 3), 128, np.uint8)
    alpha = np.zeros(49, np.float32)
    alpha[0] = 1.0  # a 7x7 grid: the word looked at the top-left cell only
    shown = attention_overlay(pixels, alpha).astype(int)
    assert shown.shape == (28, 28, 3) and shown.dtype == np.int64
    top_left, bottom_right = shown[1, 1], shown[-2, -2]
    assert top_left[0] > top_left[2] + 50  # jet's hot end over the grey
    assert bottom_right[2] > bottom_right[0] + 50  # jet's cold end
    assert np.abs(bottom_right - (64, 64, 128)).max() <= 1  # half grey 128, half jet(0) = (0, 0, 0.5) x 255


def test_strips_keep_one_row_an_image_and_pad_a_shorter_caption_with_blank_panels(tmp_path):
    pixels = np.zeros((20, 20, 3), np.uint8)
    rows = [(pixels, ["a", "red", "circle"], [np.ones(16)] * 4), (pixels, ["a"], [np.ones(16)] * 2)]
    path = plot_attention_strips(rows, tmp_path / "attention.png")
    picture = np.asarray(Image.open(path).convert("RGB"))
    assert picture.shape[1] == 5 * 144  # the image and four words (<end> last) a row
    height = picture.shape[0]
    second_row_last_panel = picture[height // 2 + 20:height - 10, 4 * 144 + grid.PAD:5 * 144 - grid.PAD]
    assert (second_row_last_panel == 255).all()  # "a" and <end> only: the rest of the row is blank
