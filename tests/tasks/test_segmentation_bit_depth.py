"""A segmenter trained on 16-bit images refuses 8-bit ones (run, package and server alike) instead of answering
nonsense; 16-bit images for an 8-bit model are well defined (scaled by depth) and accepted."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pixelforge.deploy.runtime.mask_files import BitDepthError, check_bit_depth
from tests.tasks.test_segmentation import write_tiny_masks


def test_only_eight_bit_into_a_sixteen_bit_model_is_refused():
    eight, sixteen = np.zeros((4, 4, 1), np.uint8), np.zeros((4, 4, 1), np.uint16)
    check_bit_depth(sixteen, 16, "a.png")
    check_bit_depth(eight, 8, "a.png")
    check_bit_depth(sixteen, 8, "a.png")  # finer steps of the same [0, 1] range
    with pytest.raises(BitDepthError, match=r"a\.png: an 8-bit image, but this model was trained on 16-bit"):
        check_bit_depth(eight, 16, "a.png")


@pytest.fixture(scope="module")
def grey16_run(tmp_path_factory):
    import pixelforge

    root = tmp_path_factory.mktemp("grey16")
    data = write_tiny_masks(root / "data", count=8, size=32, grey16=True)
    result = pixelforge.train(str(data), task="segment", arch="unet", weights="none", img_size=32, epochs=1,
                              batch_size=4, strategy="full", out=str(root / "run"), quiet=True)
    eight = root / "eight.png"
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(eight)
    return result.run_dir, data / "images" / "000.png", eight


@pytest.mark.slow  # trains and exports a (tiny) segmenter
def test_run_and_package_refuse_an_eight_bit_image(grey16_run, tmp_path):
    import pixelforge
    from pixelforge.deploy.runtime.registry import load_runtime, predict_package

    run, sixteen, eight = grey16_run
    results = pixelforge.predict(run, [sixteen, eight], out=tmp_path / "pred")
    assert "error" not in results[0] and "mask" in results[0]
    assert "8-bit image, but this model was trained on 16-bit" in results[1]["error"]
    assert not (tmp_path / "pred" / "eight.png").exists()  # nothing written for the refused image

    package = pixelforge.export(run, out=tmp_path / "pkg")
    runtime = load_runtime(package)
    assert runtime.bit_depth == 16
    packaged = predict_package(package, [sixteen, eight], out=tmp_path / "pkg-pred")
    assert "mask" in packaged[0] and "trained on 16-bit" in packaged[1]["error"]
    buffer = io.BytesIO()
    Image.open(eight).save(buffer, "PNG")
    with pytest.raises(BitDepthError) as refused:  # the server answers its status code
        runtime.decode_upload(buffer.getvalue(), "eight.png", None)
    assert refused.value.status_code == 422
    sixteen_bytes = sixteen.read_bytes()
    decoded = runtime.decode_upload(sixteen_bytes, "scan.png", None)
    assert decoded.dtype == np.uint16  # the upload's own values reach the model
    answer = runtime.answer(decoded, runtime.predict_batch([decoded])[0])
    assert answer["width"] == 32 and answer["height"] == 32
