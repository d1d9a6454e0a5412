"""`TaskRuntime`: the one interface through which `serve`, `video` and `predict` use a package of any task.

Each task's runtime class (classify.py, detect.py, instance.py, segment.py) implements it, and the registry
(registry.py) picks the class from package.json's "task"; so the server, the video loop and the predict command
call these methods and never ask which task a package is for.

    serving   decode_upload(bytes) -> input; predict_batch(inputs) -> outputs; answer(input, output, **options)
              -> one upload's JSON; response(model name, answers) -> the request's JSON
    files     predict_files(paths, out, **options) -> one result dict per image (and any files written to `out`);
              describe_result(result) -> its line in `pixelforge predict`'s text output
    video     predict_frame(BGR frame, **options) -> prediction; describe(prediction) -> the overlay's text;
              label(prediction) -> what `VideoResult.labels` records; draw(frame, prediction, text, fps)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.deploy.runtime.preprocess import decode_bytes
from pixelforge.errors import PixelforgeError
from pixelforge.output_names import new_file_path

# `predict PACKAGE` without --out writes here, in the current directory (numbered past earlier calls), as Ultralytics'
# `yolo predict` writes runs/predict: never into the package, which is shipped as exported and may be read-only.
PACKAGE_PREDICTIONS = Path("predictions")


class TaskRuntime:
    """A loaded package of one task. Subclasses set the class attributes and implement the methods that raise here.

    Attributes set by each instance: `package` (its JSON files), `classes`, `precision`, `providers`.
    """

    task: str = ""  # package.json's "task"
    title: str = ""  # what the server's OpenAPI page calls the model's job
    # True: uploads of concurrent requests may share one model call (same-size inputs: crops); False: one call per
    # request on one inference thread (inputs of each image's own size).
    batch_across_requests: bool = False
    # `pixelforge serve` settings this task has no use for, left out of /v1/model's "limits".
    hidden_settings: tuple[str, ...] = ()
    # Why `pixelforge serve` cannot serve this task's packages, with `{package}` to fill in (None: it can).
    serve_refusal: str | None = None
    # The key of `predict_files`' rows naming the main file written (style "stylized"), copied to the "output" every
    # task's rows share (rows.py); None: this task's rows write no file.
    output_key: str | None = None

    def metadata(self) -> dict:
        """What `GET /v1/model` says about the model (the server adds precision, providers, limits, card)."""
        return self.package.metadata()

    # ---- serving -----------------------------------------------------------------------------------------------
    def decode_upload(self, data: bytes, name: str, max_pixels: int | None):
        """One upload's bytes as the input `predict_batch` takes (runs in a worker thread).

        Raises:
            UploadError: not an image, truncated, or too many pixels (the server answers its status code).
        """
        return decode_bytes(data, None, max_pixels, name or "upload")

    def predict_batch(self, inputs: list) -> list:
        """Model outputs for decoded uploads, one per input, in order."""
        return self.predict_images(inputs)

    def answer(self, image, output, **options) -> dict:
        """One upload's JSON from its decoded input and model output. `options` are the request's query options
        (top_k, score_threshold, mask_format); each task reads the ones it has and ignores the rest."""
        raise NotImplementedError

    def response(self, model_name: str, answers: list[dict]) -> dict:
        """The JSON of one POST /v1/predict (the server adds "elapsed_ms")."""
        return {"model": model_name, "task": self.task, "precision": self.precision, "predictions": answers}

    # ---- images and files -----------------------------------------------------------------------------------
    def predict_images(self, images: list) -> list:
        """One result per PIL image (or HxWxC uint8 array)."""
        raise NotImplementedError

    def predict_files(self, paths: list, out: str | Path | None = None, **options) -> list[dict]:
        """`pixelforge predict PACKAGE PATHS`: one result dict per image, with the keys every task's rows have
        (`with_common_keys`); box, mask and image tasks also write their files into `out`. Options a task does not
        have are a one-line error."""
        raise NotImplementedError

    def with_common_keys(self, rows: list[dict]) -> list[dict]:
        """`predict_files`' rows with the keys every task's have: `path`, `task`, `output` (rows.py)."""
        from pixelforge.deploy.runtime.rows import with_common_keys

        return with_common_keys(rows, self.task, self.output_key)

    def output_folder(self, out: str | Path | None) -> Path:
        """`out`, else `predictions` in the current directory, numbered (predictions-2...) past an earlier call's:
        never overwritten. Never inside the package: a deliverable stays as exported (and may be read-only)."""
        return Path(out) if out else new_file_path(PACKAGE_PREDICTIONS)

    @staticmethod
    def describe_result(result: dict) -> str:
        """One line of `pixelforge predict`'s text output for one of `predict_files`' results (static: the CLI
        asks the runtime class, without loading the model again)."""
        return result.get("error") or result.get("summary") or str(result)

    # ---- video ------------------------------------------------------------------------------------------------
    def predict_frame(self, frame: np.ndarray, **options) -> dict:
        """What the model finds in one BGR frame (`options` as for `answer`: each task reads its own)."""
        raise NotImplementedError

    def describe(self, prediction: dict) -> str:
        """One line for the overlay band: the label, or how many objects, or the largest classes."""
        raise NotImplementedError

    def label(self, prediction: dict) -> str:
        """What `pixelforge video` records per frame (`VideoResult.labels`)."""
        return self.describe(prediction)

    def draw(self, frame: np.ndarray, prediction: dict, text: str, fps: float) -> np.ndarray:
        """The overlay on a BGR frame, in place: masks, the band with `text` and the FPS, boxes."""
        from pixelforge.deploy.runtime.draw import draw_prediction

        return draw_prediction(frame, self.classes, prediction, text, fps)

    def video_summary(self) -> dict:
        """Measures over the frames `predict_frame` saw, for `pixelforge video`'s summary (style: flicker)."""
        return {}

    # ---- helpers ----------------------------------------------------------------------------------------------
    def reject_options(self, what: str, options: dict) -> None:
        """One-line error for options this task has no use for (instead of ignoring them)."""
        given = sorted(k for k, v in options.items() if v is not None and v is not False)  # 0 is given
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise PixelforgeError(f"{what}: {flags} not available for a {self.task!r} package ({self.package.folder})")

