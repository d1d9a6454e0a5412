"""The semantic-segmentation runtime: the exporter's resize and normalisation, logits resized back, argmax.

A segmentation package (tasks/segment/export.py) holds a model with a fixed input [1, C, S, S] and logits
[1, K, S, S] out. Preprocessing is deliberately simple enough to re-implement anywhere: resize the whole image to
S x S (bilinear), scale by bit depth to [0, 1], normalise; the logits are resized back to the image's size before
the per-pixel argmax. The export's parity check runs these same two functions against PyTorch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pixelforge.deploy.runtime.answers import classes_summary, segmentation_answer
from pixelforge.deploy.runtime.dense import DenseRuntime, as_array
from pixelforge.deploy.runtime.draw import class_fractions, mask_colors
from pixelforge.deploy.runtime.mask_files import check_bit_depth
from pixelforge.deploy.runtime.preprocess import frame_to_image


def preprocess_image(image: np.ndarray, pre: dict) -> np.ndarray:
    """An HxWxC uint8/uint16 image as the package's float32 [1, C, S, S] input (numpy and PIL only)."""
    from pixelforge.data.masks.images import match_channels

    array = match_channels(image, pre["channels"])
    size = tuple(pre["size"])  # (height, width)
    if array.dtype == np.uint8:
        # Resized as 8-bit, as the run's model_input does (torchvision's antialiased uint8 resize is PIL's): a
        # float resize differs by up to about one grey level, enough to flip near-tied pixels between run and package.
        planes = [np.asarray(Image.fromarray(np.ascontiguousarray(array[..., c])).resize((size[1], size[0]),
                                                                                       Image.BILINEAR))
                  for c in range(array.shape[-1])]
        x = np.stack(planes).astype(np.float32) / 255.0
    else:
        array = array.astype(np.float32) / 65535.0
        planes = [np.asarray(Image.fromarray(array[..., c], mode="F").resize((size[1], size[0]), Image.BILINEAR))
                  for c in range(array.shape[-1])]
        x = np.stack(planes)
    x = (x - np.asarray(pre["mean"], np.float32)[:, None, None]) / np.asarray(pre["std"], np.float32)[:, None, None]
    return x[None].astype(np.float32)


# Resizing every class's logits to the image before the argmax takes K x 4 bytes a pixel: 7.6 GB for a 108-megapixel
# photo. Above this many pixels the logits are resized one class at a time, keeping a running maximum and its class
# (the first class wins a tie, as argmax's first maximum does): the same resize of each plane, so the same mask, in
# about 20 bytes a pixel whatever the number of classes. Smaller images keep the one-pass argmax.
PER_CLASS_PIXELS = 16_000_000


def mask_dtype(num_classes: int) -> np.dtype:
    """The smallest unsigned type that holds class ids 0..K-1: uint8 up to 256 classes (what a palette PNG holds),
    uint16 beyond. A predicted mask is returned in it, run and package alike: int64 took 864 MB at 108 MP."""
    return np.dtype(np.uint8 if num_classes <= 256 else np.uint16 if num_classes <= 65536 else np.int64)


def logits_to_mask(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """[1, K, s, s] logits -> [height, width] class ids in `mask_dtype(K)` (logits resized bilinearly before the
    argmax)."""
    def resized(plane: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(plane.astype(np.float32), mode="F").resize((width, height), Image.BILINEAR))

    if height * width <= PER_CLASS_PIXELS:
        return np.stack([resized(plane) for plane in logits[0]]).argmax(0).astype(mask_dtype(len(logits[0])))
    best = np.array(resized(logits[0, 0]))  # a writable copy
    index = np.zeros((height, width), mask_dtype(len(logits[0])))
    for k in range(1, len(logits[0])):
        plane = resized(logits[0, k])
        better = plane > best  # strictly: a tie keeps the earlier class
        index[better] = k
        np.maximum(best, plane, out=best)
        del plane, better
    del best
    return index


class SegmentationRuntime(DenseRuntime):
    """A segmentation package ready to predict."""

    task = "segment"
    output_key = "mask"
    title = "Semantic segmentation"

    def colors(self) -> dict[str, str]:
        return mask_colors(self.classes)

    @property
    def bit_depth(self) -> int:
        """The bit depth of the training images (8 for packages older than this field)."""
        return int(self.package.preprocess.get("bit_depth", 8))

    def predict_images(self, images: list) -> list[dict]:
        """Raises BitDepthError for an 8-bit image when the model was trained on 16-bit ones (mask_files.py)."""
        manifest, pre, results = self.package.manifest, self.package.preprocess, []
        for index, image in enumerate(images):  # the exported graph has a fixed [1, C, S, S] input: one per call
            array = as_array(image)
            check_bit_depth(array, self.bit_depth, f"image {index}")
            logits = self.session.run([manifest["output_name"]],
                                      {manifest["input_name"]: preprocess_image(array, pre)})[0]
            results.append({"mask": logits_to_mask(logits, *array.shape[:2])})
        return results

    def predict_files(self, paths: list, out: str | Path | None = None, *, progress=None, **options) -> list[dict]:
        """A mask PNG and an overlay per image in `out`, and one result dict each, as `predict_segmentation`
        writes them from a run (mask_files.py); images are read as training read them (16-bit too)."""
        from pixelforge.deploy.runtime.mask_files import predict_files

        self.reject_options("predict", options)

        def predict(image: np.ndarray) -> np.ndarray:
            mask = self.predict_images([image])[0]["mask"]
            if progress is not None:
                progress(1)
            return mask

        return self.with_common_keys(predict_files(paths, self.output_folder(out), self.classes, predict,
                                                   self.bit_depth))

    # ---- serving and video --------------------------------------------------------------------------------------
    def decode_upload(self, data: bytes, name: str, max_pixels: int | None):
        """An upload as the model needs it: RGB for an 8-bit model; for a 16-bit model the upload's own values
        (an 8-bit upload is refused with 422, as `predict` refuses such a file)."""
        from pixelforge.data.masks.images import load_image_bytes

        image = super().decode_upload(data, name, max_pixels)  # checks: an image, whole, not too many pixels
        if self.bit_depth <= 8:
            return image
        array = load_image_bytes(data)
        check_bit_depth(array, self.bit_depth, name or "upload")
        return array

    def answer(self, image, output: dict, *, mask_format: str = "png", **options) -> dict:
        height, width = as_array(image).shape[:2]
        return segmentation_answer(output, self.classes, width, height, mask_format)

    def predict_frame(self, frame: np.ndarray, **options) -> dict:
        """{"mask": HxW class ids at the frame's size, "class_fractions": {class: share of pixels}}."""
        mask = self.predict_images([frame_to_image(frame)])[0]["mask"]
        return {"mask": mask, "class_fractions": class_fractions(mask, self.classes)}

    def describe(self, prediction: dict) -> str:
        return classes_summary(self.classes, prediction["class_fractions"])

