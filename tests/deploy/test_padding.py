"""The image-to-image runtimes pad to their network's stride: the original pixels must come back untouched."""

import numpy as np

from pixelforge.deploy.runtime.padding import pad_to_multiple


def test_pads_bottom_right_by_reflection_and_keeps_the_image():
    image = np.arange(5 * 6 * 3, dtype=np.float32).reshape(5, 6, 3)
    padded = pad_to_multiple(image, 4)
    assert padded.shape == (8, 8, 3)
    np.testing.assert_array_equal(padded[:5, :6], image)
    np.testing.assert_array_equal(padded[5, :6], image[3])  # reflection: the row before the last
    assert pad_to_multiple(padded, 4) is padded


def test_an_image_narrower_than_its_pad_is_mirrored_not_refused():
    image = np.arange(2 * 1 * 1, dtype=np.float32).reshape(2, 1, 1)
    padded = pad_to_multiple(image, 8)
    assert padded.shape == (8, 8, 1)
    np.testing.assert_array_equal(padded[:2, :1], image)
