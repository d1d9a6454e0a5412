"""`pixelforge serve`: a package behind a FastAPI app, on the torch-free runtime.

    GET  /            a web page: drop or pick an image, see it with top-k bars (classification), boxes drawn on
                      it (detection) or the mask laid over it (segmentation); the model card below
    GET  /healthz     liveness, which model is loaded and its task (no key needed)
    GET  /v1/model    metadata (task, classes, class colours), parity and the model card
    POST /v1/predict  multipart field `file`, one or many images; ?top_k=N (classify),
                      ?score_threshold=0.3 (detect), ?format=png|rle (segment); answers: see runtime/answers.py
    GET  /docs        OpenAPI (Swagger UI)

Everything task-specific is the package's runtime's (`pixelforge.deploy.runtime.base.TaskRuntime`): how an upload
is decoded, how it is answered, which settings matter. Runtimes whose inputs all have one size (classification
crops) are micro-batched across requests; the others answer at each image's own size, so images of different sizes
cannot share a model call: their requests are queued onto one inference thread instead (one model call at a time,
ONNX Runtime using every core in it), and the event loop stays free.
Errors are JSON `{"detail": "..."}`: 413 over the byte or pixel limit, 415 not an image (or not multipart),
400 truncated image or malformed form, 401 missing/wrong key when the server has one, 422 a query parameter out of
range (`?top_k=0`). Uploads stay in memory.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from pixelforge.deploy.export.torchscript import TORCH_LOADERS
from pixelforge.deploy.runtime.answers import MASK_FORMATS
from pixelforge.deploy.runtime.base import TaskRuntime
from pixelforge.deploy.runtime.preprocess import UploadError
from pixelforge.deploy.runtime.registry import load_runtime, runtime_class
from pixelforge.deploy.serve.batcher import MicroBatcher
from pixelforge.deploy.serve.uploads import UploadRejected, read_uploads
from pixelforge.errors import is_out_of_memory, memory_that_ran_out

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
    score_threshold: float = 0.3  # detection: default lowest score answered (?score_threshold= overrides)
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


def create_app(settings: ServerSettings, runtime: TaskRuntime | None = None) -> FastAPI:
    """The FastAPI app for one package (`runtime`: an already loaded runtime for it, e.g. a test's fake).

    Example:
        >>> from fastapi.testclient import TestClient  # doctest: +SKIP
        >>> with TestClient(create_app(ServerSettings("packages/shapes"))) as client:  # doctest: +SKIP
        ...     client.post("/v1/predict", files={"file": open("star.png", "rb")}).json()["predictions"][0]["label"]
        'star'
    """
    refuse_unservable(type(runtime) if runtime is not None else runtime_class(settings.package), settings.package)
    runtime = runtime or load_runtime(settings.package, settings.precision, settings.threads, spin=settings.spin,
                                      loaders=TORCH_LOADERS)
    if runtime.batch_across_requests:
        batcher = MicroBatcher(runtime.predict_batch, settings.max_batch, settings.max_wait_ms)
    else:
        batcher = _SerialInference(runtime)
    package = runtime.package
    model_name = package.manifest.get("name") or package.folder.name
    index_html = (STATIC / "index.html").read_text()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await batcher.stop()

    app = FastAPI(title=f"pixelforge: {model_name}", lifespan=lifespan,
                  description=f"{runtime.title or runtime.task} served from a pixelforge package (ONNX Runtime).",
                  version=package.manifest.get("pixelforge_version") or "0")
    app.state.runtime, app.state.batcher, app.state.settings = runtime, batcher, settings
    require_key = _key_check(settings.api_key)

    @app.exception_handler(UploadRejected)
    async def _rejected(request: Request, exc: UploadRejected):
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": validation_message(exc.errors())}, status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(index_html)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "model": model_name, "task": runtime.task, "precision": runtime.precision,
                "auth_required": settings.api_key is not None}

    @app.get("/v1/model", dependencies=[Depends(require_key)])
    async def model_info() -> dict:
        hidden = {"package", "api_key", "threads", "spin", *runtime.hidden_settings}
        limits = {k: v for k, v in asdict(settings).items() if k not in hidden}
        return {"task": runtime.task, **runtime.metadata(), "precision": runtime.precision,
                "providers": runtime.providers, "limits": limits, "model_card": package.model_card}

    @app.post("/v1/predict", dependencies=[Depends(require_key)], openapi_extra={"requestBody": _MULTIPART_BODY})
    async def predict(request: Request, top_k: int = Query(settings.top_k, ge=1, le=1000),
                      score_threshold: float = Query(settings.score_threshold, ge=0, le=1,
                                                     description="detection: lowest score answered"),
                      mask_format: str = Query("png", alias="format", pattern="^(" + "|".join(MASK_FORMATS) + ")$",
                                               description="segmentation: png (base64 palette PNG) or rle (COCO)"),
                      ) -> dict:
        options = {"top_k": top_k, "score_threshold": score_threshold, "mask_format": mask_format}
        return await _predict(request, runtime, batcher, settings, model_name, options)

    if hasattr(runtime, "generate_answer"):  # a generator (GAN package): images out, none in
        _add_generate_route(app, runtime, model_name, require_key)
    if hasattr(runtime, "stylize_answer"):  # a style package: its own style, or an uploaded one (arbitrary)
        from pixelforge.deploy.serve.stylize import add_stylize_route

        add_stylize_route(app, runtime, model_name, require_key, settings, _decode)
    return app


def _add_generate_route(app: FastAPI, runtime, model_name: str, require_key) -> None:
    """POST /v1/generate?n=16&class=3&seed=0&truncation=1.0: base64 PNGs from the package's generator."""
    from pixelforge.errors import PixelforgeError

    @app.post("/v1/generate", dependencies=[Depends(require_key)])
    async def generate(n: int = Query(16, ge=1, le=256), class_name: str | None = Query(None, alias="class"),
                       seed: int = Query(0, ge=0), truncation: float | None = Query(None, gt=0)) -> dict:
        started = time.perf_counter()
        try:
            body = await run_in_threadpool(runtime.generate_answer, n, class_name, seed, truncation)
        except PixelforgeError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"model": model_name, **body, "elapsed_ms": round(1000 * (time.perf_counter() - started), 2)}


async def _predict(request: Request, runtime: TaskRuntime, batcher, settings: ServerSettings, model_name: str,
                   options: dict) -> dict:
    """One POST /v1/predict: uploads decoded in threads, one (shared or serial) model call, answers in threads."""
    started = time.perf_counter()
    uploads = await read_uploads(request.headers.get("content-type", ""), request.headers.get("content-length"),
                                 request.stream(), UPLOAD_FIELD, settings.max_bytes, settings.max_files)
    inputs = await asyncio.gather(*[run_in_threadpool(_decode, runtime, u.data, u.filename, settings.max_pixels)
                                    for u in uploads])
    try:
        outputs = await batcher.submit(list(inputs))
        answers = await asyncio.gather(*[run_in_threadpool(runtime.answer, x, y, **options)
                                         for x, y in zip(inputs, outputs)])
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        # 503: the server is short of memory now, not the request malformed; a smaller one may pass.
        raise UploadRejected(503, f"out of {memory_that_ran_out(exc)} running the model on {len(inputs)} image(s) "
                                  f"(--max-batch {settings.max_batch}, --max-pixels {settings.max_pixels}): send fewer "
                                  f"or smaller images, or serve with a lower --max-batch or --max-pixels, or "
                                  f"--precision int8") from None
    body = runtime.response(model_name, [{"filename": u.filename, **a} for u, a in zip(uploads, answers)])
    return {**body, "elapsed_ms": round(1000 * (time.perf_counter() - started), 2)}


def validation_message(errors) -> str:
    """FastAPI's list of validation errors as the one line every other error answers with:
    "top_k: Input should be greater than or equal to 1 (got '0')"."""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "body", "path", "header"))
        got = f" (got {error['input']!r})" if error.get("input") is not None else ""
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}{got}")
    return "; ".join(parts) or "invalid request"


def _key_check(api_key: str | None):
    """The dependency that refuses /v1/* requests without the server's key (none set: everyone may)."""

    def require_key(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key; send it as the X-API-Key header",
                                headers={"WWW-Authenticate": "Bearer"})

    return require_key


def _decode(runtime: TaskRuntime, data: bytes, filename: str, max_pixels: int):
    """Decode one upload into the runtime's input (runs in a worker thread: PIL releases the GIL)."""
    try:
        return runtime.decode_upload(data, filename or "upload", max_pixels)
    except UploadError as exc:
        raise UploadRejected(exc.status_code, str(exc)) from None


class _SerialInference:
    """Model calls one request at a time on one thread (the batcher's role, without batching across requests)."""

    def __init__(self, runtime: TaskRuntime):
        self.runtime = runtime
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixelforge-infer")
        self.batches_run = self.images_run = 0

    async def submit(self, images: list) -> list[dict]:
        results = await asyncio.get_running_loop().run_in_executor(self.executor, self.runtime.predict_batch, images)
        self.batches_run, self.images_run = self.batches_run + 1, self.images_run + len(images)
        return results

    async def stop(self) -> None:
        return None


def refuse_unservable(runtime_cls: type[TaskRuntime], package) -> None:
    """One line for a package whose task the server cannot answer (a clip package needs class names; before, every
    upload got a 500), before the model is loaded."""
    from pixelforge.errors import PixelforgeError

    if runtime_cls.serve_refusal:
        raise PixelforgeError(runtime_cls.serve_refusal.format(package=package))


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` with several workers: settings come as JSON in PIXELFORGE_SERVE."""
    import json
    import os

    return create_app(ServerSettings(**json.loads(os.environ["PIXELFORGE_SERVE"])))


def check_port_free(host: str, port: int) -> None:
    """One line for a port another program holds (uvicorn logs its own ERROR line and exits 1 instead)."""
    import socket

    from pixelforge.errors import PixelforgeError

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closing socket is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PixelforgeError(f"{host}:{port}: cannot listen there ({exc.strerror or exc}); another server may "
                                  "hold the port: choose another --port") from None


def serve(settings: ServerSettings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          log_level: str = "info") -> None:
    """Run the app under uvicorn (blocking). Several workers each load the model once."""
    import uvicorn

    check_port_free(host, port)

    if workers > 1:
        import json
        import os
        from dataclasses import replace

        if settings.threads is None:  # N processes share the cores instead of each spinning on all of them
            settings = replace(settings, threads=max(1, (os.cpu_count() or 1) // workers))
        os.environ["PIXELFORGE_SERVE"] = json.dumps(asdict(settings))
        uvicorn.run("pixelforge.deploy.serve.server:app_from_environment", factory=True, host=host, port=port,
                    workers=workers, log_level=log_level)
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
