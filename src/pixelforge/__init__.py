"""pixelforge: the deep-learning image workflow, from a folder of photos to a deployed model.

Example:
    >>> import pixelforge
    >>> result = pixelforge.train(data="digits", model="simple_cnn", weights="none", epochs=1,
    ...                           img_size=32, out="runs/doc")  # doctest: +SKIP
    >>> pixelforge.evaluate(result.run_dir, data="digits").accuracy  # doctest: +SKIP
"""

from pixelforge.errors import PixelforgeError

__version__ = "0.1.0"
__all__ = ["PixelforgeError", "train", "evaluate", "predict", "__version__"]


def __getattr__(name):
    # The API functions pull in torch; importing them lazily keeps `import pixelforge` and `pixelforge --help` fast.
    if name == "train":
        from pixelforge.api.train import train

        return train
    if name == "evaluate":
        from pixelforge.api.evaluate import evaluate

        return evaluate
    if name == "predict":
        from pixelforge.api.predict import predict

        return predict
    raise AttributeError(f"module 'pixelforge' has no attribute {name!r}")
