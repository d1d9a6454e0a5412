"""The fused cast+normalize gives what torchvision's ToDtype(scale=True) + Normalize give."""

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from pixelforge.data.transforms import ToNormalizedFloat

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PAIR = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(MEAN), list(STD))])


@pytest.mark.parametrize("make", [
    lambda: torch.randint(0, 256, (3, 17, 23), dtype=torch.uint8),
    lambda: tv_tensors.Image(torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)),
    lambda: torch.rand(3, 9, 5),  # already float: no scaling, like ToDtype
    lambda: torch.randint(0, 256, (4, 3, 6, 6), dtype=torch.uint8),  # a batch
])
def test_matches_torchvisions_pair(make):
    image = make()
    ours, theirs = ToNormalizedFloat(MEAN, STD)(image), PAIR(image)
    assert ours.dtype == torch.float32 and ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs.as_subclass(torch.Tensor), rtol=0, atol=1e-6)


def test_inputs_it_does_not_fuse_go_through_the_pair():
    gray = torch.randint(0, 256, (1, 4, 4), dtype=torch.uint8)  # 1 channel, 3 means: whatever Normalize does
    torch.testing.assert_close(ToNormalizedFloat(MEAN, STD)(gray), PAIR(gray))
    deep = torch.randint(0, 65535, (3, 4, 4), dtype=torch.uint16)
    torch.testing.assert_close(ToNormalizedFloat(MEAN, STD)(deep), PAIR(deep))
