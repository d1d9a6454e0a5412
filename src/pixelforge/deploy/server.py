"""`pixelforge serve`: a package behind a FastAPI app, micro-batched onto the torch-free runtime.

    GET  /            a web page: drop or pick an image, see it with top-k bars, the model card below
    GET  /healthz     liveness and which model is loaded (no key needed)
    GET  /v1/model    metadata, parity and the model card
    POST /v1/predict  multipart field `file`, one or many images; ?top_k=N
    GET  /docs        OpenAPI (Swagger UI)

Errors are JSON `{"detail": "..."}`: 413 over the byte or pixel limit, 415 not an image (or not multipart),
400 truncated image or malformed form, 401 missing/wrong key when the server has one. Uploads stay in memory.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from pixelforge.deploy.batcher import MicroBatcher
from pixelforge.deploy.preprocess import UploadError, decode_bytes
from pixelforge.deploy.runtime import Runtime
from pixelforge.deploy.uploads import UploadRejected, read_uploads

STATIC = Path(__file__).parent / "static"
UPLOAD_FIELD = "file"


@dataclass(frozen=True)
class ServerSettings:
    """How `serve` runs; every field is a `pixelforge serve` option."""

    package: str
    api_key: str | None = None
    precision: str | None = None
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_bytes: int = 16 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_files: int = 32
    top_k: int = 5
    threads: int | None = None
    spin: bool = False  # ONNX Runtime busy-waiting; off, so upload decoding threads get the cores


_MULTIPART_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": [UPLOAD_FIELD],
        "properties": {UPLOAD_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"},
                                      "description": "one or more images (repeat the field for more)"}},
    }}},
}


def create_app(settings: ServerSettings, runtime: Runtime | None = None) -> FastAPI:
    """The FastAPI app for one package.

    Example:
        >>> from fastapi.testclient import TestClient  # doctest: +SKIP
        >>> with TestClient(create_app(ServerSettings("packages/shapes"))) as client:  # doctest: +SKIP
        ...     client.post("/v1/predict", files={"file": open("star.png", "rb")}).json()["predictions"][0]["label"]
        'star'
    """
    runtime = runtime or Runtime(settings.package, settings.precision, settings.threads, spin=settings.spin)
    batcher = MicroBatcher(runtime.logits_for_crops, settings.max_batch, settings.max_wait_ms)
    package = runtime.package
    index_html = (STATIC / "index.html").read_text()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await batcher.stop()

    app = FastAPI(title=f"pixelforge: {package.manifest.get('name', package.folder.name)}", lifespan=lifespan,
                  description="Image classification served from a pixelforge package (ONNX Runtime, micro-batched).",
                  version=package.manifest.get("pixelforge_version") or "0")
    app.state.runtime, app.state.batcher, app.state.settings = runtime, batcher, settings

    def require_key(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise HTTPException(401, "missing or wrong API key; send it as the X-API-Key header",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(UploadRejected)
    async def _rejected(request: Request, exc: UploadRejected):
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(index_html)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "model": package.manifest.get("name"), "precision": runtime.precision,
                "auth_required": settings.api_key is not None}

    @app.get("/v1/model", dependencies=[Depends(require_key)])
    async def model_info() -> dict:
        limits = {k: v for k, v in asdict(settings).items() if k not in ("package", "api_key", "threads", "spin")}
        return {**package.metadata(), "precision": runtime.precision, "providers": runtime.providers,
                "limits": limits, "model_card": package.model_card}

    @app.post("/v1/predict", dependencies=[Depends(require_key)], openapi_extra={"requestBody": _MULTIPART_BODY})
    async def predict(request: Request, top_k: int = Query(settings.top_k, ge=1, le=1000)) -> dict:
        started = time.perf_counter()
        uploads = await read_uploads(request.headers.get("content-type", ""), request.headers.get("content-length"),
                                     request.stream(), UPLOAD_FIELD, settings.max_bytes, settings.max_files)
        crops = await asyncio.gather(*[run_in_threadpool(_prepare, runtime, u.data, u.filename, settings.max_pixels)
                                       for u in uploads])
        logits = await batcher.submit(list(crops))
        predictions = [{"filename": u.filename, "label": ranked[0]["label"], "score": ranked[0]["score"],
                        "top_k": ranked} for u, ranked in zip(uploads, runtime.rank(logits, top_k))]
        return {"model": package.manifest.get("name"), "precision": runtime.precision, "predictions": predictions,
                "elapsed_ms": round(1000 * (time.perf_counter() - started), 2)}

    return app


def _prepare(runtime: Runtime, data: bytes, filename: str, max_pixels: int):
    """Decode and crop one upload (runs in a worker thread: PIL releases the GIL)."""
    try:
        image = decode_bytes(data, runtime.preprocess.resize_short_side, max_pixels, filename or "upload")
    except UploadError as exc:
        raise UploadRejected(exc.status_code, str(exc)) from None
    return runtime.crop(image)


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` with several workers: settings come as JSON in PIXELFORGE_SERVE."""
    import json
    import os

    return create_app(ServerSettings(**json.loads(os.environ["PIXELFORGE_SERVE"])))


def serve(settings: ServerSettings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          log_level: str = "info") -> None:
    """Run the app under uvicorn (blocking). Several workers each load the model once."""
    import uvicorn

    if workers > 1:
        import json
        import os
        from dataclasses import replace

        if settings.threads is None:  # N processes share the cores instead of each spinning on all of them
            settings = replace(settings, threads=max(1, (os.cpu_count() or 1) // workers))
        os.environ["PIXELFORGE_SERVE"] = json.dumps(asdict(settings))
        uvicorn.run("pixelforge.deploy.server:app_from_environment", factory=True, host=host, port=port,
                    workers=workers, log_level=log_level)
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
