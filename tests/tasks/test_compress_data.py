"""Compression's training crops: any image size gives full crops (a photo smaller than a crop is scaled up); a file
that cannot be decoded is skipped and named."""

import numpy as np
from PIL import Image

from pixelforge.tasks.compress.data import CropDataset


def test_images_smaller_than_a_crop_give_full_crops_in_training_and_validation(tmp_path):
    files = []
    for i, size in enumerate([(12, 12), (40, 9), (64, 64)]):  # 12 px under 32 px crops: reflect padding would fail
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(files[-1])
    for train in (True, False):
        crops = CropDataset(files, 32, crops_per_image=2, train=train)
        for index in range(len(crops)):
            crop = crops[index]
            assert crop.shape == (3, 32, 32) and 0.0 <= float(crop.min()) and float(crop.max()) <= 1.0
            assert float(crop.std()) > 0.05  # image content, not a flat padding


def test_a_broken_file_is_skipped_and_named_before_training_instead_of_stopping_an_epoch(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(good)
    (tmp_path / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(30))  # a JPEG cut off after its header
    crops = CropDataset([tmp_path / "cut.jpg", good], 32, crops_per_image=2, train=True)
    assert len(crops) == 2 and crops.files == [good] and crops[1].shape == (3, 32, 32)
    assert len(crops.unreadable) == 1 and crops.unreadable[0].startswith(str(tmp_path / "cut.jpg"))
