"""build_classifier's side effects on the process."""

import pytest
import torch

from pixelforge.errors import PixelforgeError
from pixelforge.models.classifier import build_classifier


def test_building_a_model_leaves_torchs_thread_count_as_it_was(tmp_path):
    """build_classifier builds on one thread (tiny ops); the training after it must get every thread back, also
    when the weights file is bad."""
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a state dict")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        build_classifier("simple_cnn", 3, weights="none")
        assert torch.get_num_threads() == 2
        with pytest.raises(PixelforgeError, match="weights.pth"):
            build_classifier("resnet18", 3, weights=str(bad))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
