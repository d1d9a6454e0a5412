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


@pytest.mark.parametrize("name", ["simple_cnn", "tf_efficientnet_lite0"])
def test_restoring_a_checkpoint_gives_the_built_and_loaded_model_exactly(name):
    from pixelforge.models.classifier import restore_classifier

    torch.manual_seed(0)
    trained = build_classifier(name, 3, "none", 0.1).eval()
    restored = restore_classifier(name, 3, 0.1, {k: v.clone() for k, v in trained.state_dict().items()}).eval()
    assert not any(t.is_meta for t in (*restored.parameters(), *restored.buffers()))
    assert all(p.requires_grad for p in restored.parameters())  # Grad-CAM and fine-tuning still work on it
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(restored(x), trained(x))
