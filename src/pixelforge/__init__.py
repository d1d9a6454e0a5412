"""pixelforge: the deep-learning image workflow, from a folder of photos to a deployed model.

Example:
    >>> import pixelforge
    >>> result = pixelforge.train(data="digits", model="simple_cnn", weights="none", strategy="full", epochs=3,
    ...                           img_size=32, out="runs/doc")  # doctest: +SKIP
    >>> pixelforge.evaluate(result.run_dir, data="digits").accuracy  # doctest: +SKIP
"""

from pixelforge.errors import PixelforgeError

__version__ = "0.1.0"
__all__ = ["PixelforgeError", "train", "evaluate", "predict", "export", "generate", "zeroshot", "stylize", "compress",
           "decompress", "tune_study", "nas", "explain_images", "fewshot", "drift", "fit", "StopTraining", "Task",
           "register_task", "__version__"]

# name -> (module, attribute). The API pulls in torch; importing it lazily keeps `import pixelforge` and
# `pixelforge --help` fast.
_LAZY = {
    "train": ("pixelforge.api.train", "train"),
    "evaluate": ("pixelforge.api.evaluate", "evaluate"),
    "predict": ("pixelforge.api.predict", "predict"),
    "export": ("pixelforge.api.export", "export"),
    "generate": ("pixelforge.api.generate", "generate"),
    "zeroshot": ("pixelforge.api.zeroshot", "zeroshot"),
    "stylize": ("pixelforge.api.stylize", "stylize"),  # `pixelforge stylize`
    "compress": ("pixelforge.api.compress", "compress"),  # `pixelforge compress`
    "decompress": ("pixelforge.api.compress", "decompress"),  # `pixelforge decompress`
    "tune_study": ("pixelforge.tune.api", "tune_study"),  # `pixelforge tune` (pixelforge.tune is the package)
    "nas": ("pixelforge.tune.api", "nas"),  # `pixelforge nas`
    "explain_images": ("pixelforge.explain.commands", "explain_images"),  # `pixelforge explain` (the package's name)
    "fewshot": ("pixelforge.tasks.classify.fewshot.predict", "few_shot_predict"),  # `pixelforge fewshot`
    "drift": ("pixelforge.tasks.classify.drift", "drift_report"),  # `pixelforge data drift`
    "fit": ("pixelforge.engine.fit", "fit"),
    "StopTraining": ("pixelforge.engine.hooks", "StopTraining"),
    "Task": ("pixelforge.tasks.base", "Task"),
    "register_task": ("pixelforge.tasks.registry", "register_task"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'pixelforge' has no attribute {name!r}")
