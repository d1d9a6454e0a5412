"""The deployment commands of the `pixelforge` CLI: export, serve, video, and `predict` on a package.

Registered in `pixelforge.cli` one line each. This module imports only typer at import time; torch is imported
by `export` alone (it needs the PyTorch model), never by `predict`, `serve` or `video` on an ONNX package.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

log = logging.getLogger("pixelforge")


def _logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)


def export_command(
    run: Path = typer.Argument(..., help="Run folder written by `pixelforge train`."),
    out: Path = typer.Option(..., "--out", help="Package folder to create (must not exist or be empty)."),
    format: str = typer.Option("onnx", "--format", help="onnx | torchscript."),
    int8: bool = typer.Option(False, "--int8", help="Add a static int8 model calibrated on training images (ONNX)."),
    fp16: bool = typer.Option(False, "--fp16", help="Add an fp16 model for GPU runtimes (ONNX)."),
    data: Optional[str] = typer.Option(None, help="Data for the parity check and calibration (default: the run's)."),
    parity_images: int = typer.Option(256, min=1, help="Validation images the parity check uses (at most)."),
    calibration_images: int = typer.Option(128, min=1, help="Training images that calibrate int8 ranges."),
    calibration: str = typer.Option("minmax", help="int8 calibration: minmax | entropy | percentile."),
    tolerance: float = typer.Option(1e-3, help="Allowed max |Δlogit| (fp32), relative to max(1, max |logit|)."),
    max_int8_drop: float = typer.Option(1.0, help="Allowed int8 accuracy drop in points (at least one image)."),
    fp16_tolerance: float = typer.Option(5e-2, help="Allowed max |Δlogit| for fp16, relative like --tolerance."),
) -> None:
    """Export a run to a package (model, preprocess.json, classes.json, model card), checked against PyTorch."""
    from pixelforge.deploy.export import export_package
    from pixelforge.runs.files import run_task_name as run_task

    _logging()
    task = run_task(run)
    if task in ("detect", "segment", "instance"):  # boxes / masks: their own parity checks, fp32 ONNX
        if task == "detect":
            from pixelforge.deploy.export_detection import export_detection_package as export_dense
        elif task == "instance":
            from pixelforge.deploy.export_instance import export_instance_package as export_dense
        else:
            from pixelforge.deploy.export_segmentation import export_segmentation_package as export_dense
        package = export_dense(run, out, data=data, parity_images=parity_images)
        typer.echo(f"package: {package}  ({', '.join(sorted(p.name for p in Path(package).iterdir()))})")
        return
    result = export_package(run, out, format=format, int8=int8, fp16=fp16, data=data, parity_images=parity_images,
                            calibration_images=calibration_images, calibration=calibration, tolerance=tolerance,
                            max_int8_drop=max_int8_drop, fp16_tolerance=fp16_tolerance)
    files = ", ".join(sorted(p.name for p in result.package_dir.iterdir()))
    typer.echo(f"package: {result.package_dir}  ({files})  in {result.seconds:.1f} s")


def predict_any_package(package: Path, paths: list[str], out: Path | None, options: dict):
    """`pixelforge predict PACKAGE ...` for a package of any task: (results, one-line description of a result)."""
    manifest = package / "package.json"
    task = json.loads(manifest.read_text()).get("task", "classify") if manifest.is_file() else "classify"
    if task == "classify":
        results = predict_package(package, paths, top_k=options.get("top_k", 1))
        return results, lambda r: "  ".join(f"{t['label']} {t['score']:.3f}" for t in r.get("top_k", [])) or r.get("error")
    if task == "instance":
        from pixelforge.deploy.export_instance import predict_package_folder
    elif task == "detect":
        from pixelforge.deploy.export_detection import predict_package_folder
    else:
        from pixelforge.deploy.export_segmentation import predict_package_folder
    target = out or package / "predictions"
    boxes = {k: options[k] for k in ("score_threshold", "nms_iou") if k in options}
    results = (predict_package_folder(package, paths, target) if task == "segment"
               else predict_package_folder(package, paths, target, boxes.get("score_threshold", 0.3), boxes.get("nms_iou", 0.5)))
    from pixelforge.tasks.common.dense import DenseTask

    return results, DenseTask().describe_prediction


def predict_package(package: Path, paths: list[str], top_k: int = 1, batch_size: int = 32,
                    precision: str | None = None) -> list[dict]:
    """`pixelforge predict PACKAGE ...`: the same result dicts as predicting from a run, via ONNX Runtime."""
    from pixelforge.data.sources import collect_paths
    from pixelforge.deploy.runtime import Runtime
    from pixelforge.errors import PixelforgeError

    files = collect_paths(list(paths))
    if not files:
        raise PixelforgeError(f"no images found in {', '.join(map(str, paths))}")
    runtime = Runtime(package, precision)
    if not sys.stderr.isatty() or len(files) <= batch_size:
        return runtime.predict_files(files, top_k, batch_size)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("predict", total=len(files))
        return runtime.predict_files(files, top_k, batch_size, progress=lambda n: bar.advance(task, n))


def serve_command(
    package: Path = typer.Argument(..., help="Package folder written by `pixelforge export`."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, help="TCP port."),
    api_key: Optional[str] = typer.Option(None, envvar="PIXELFORGE_API_KEY",
                                          help="Require this key (X-API-Key header) on /v1/* (or set PIXELFORGE_API_KEY)."),
    workers: int = typer.Option(1, min=1, help="Server processes, each with its own copy of the model."),
    precision: Optional[str] = typer.Option(None, help="fp32 | int8 | fp16 (default: the package's default)."),
    max_batch: int = typer.Option(32, min=1, help="Micro-batching: most images per model call."),
    max_wait_ms: float = typer.Option(5.0, min=0, help="Micro-batching: longest wait for more requests."),
    max_bytes: int = typer.Option(16 * 1024 * 1024, min=1, help="Largest upload per image, in bytes (413 above)."),
    max_pixels: int = typer.Option(50_000_000, min=1, help="Largest image in pixels (413 above; stops decompression bombs)."),
    top_k: int = typer.Option(5, min=1, help="Default number of labels per image (?top_k= overrides)."),
    threads: Optional[int] = typer.Option(None, min=1, help="ONNX Runtime threads (default: all cores)."),
    spin: bool = typer.Option(False, "--spin/--no-spin", help="Let ONNX Runtime threads busy-wait (dedicated cores only)."),
    score_threshold: float = typer.Option(0.3, help="detect: default lowest box score returned (?score_threshold= overrides)."),
) -> None:
    """Serve a package over HTTP: POST /v1/predict, GET /healthz, GET /v1/model, /docs, and a web page at /."""
    from pixelforge.deploy.dense_runtime import package_task
    from pixelforge.deploy.server import ServerSettings, serve

    package_task(package)  # a clear error before uvicorn starts (any task's package)
    settings = ServerSettings(str(package), api_key=api_key, precision=precision, max_batch=max_batch,
                              max_wait_ms=max_wait_ms, max_bytes=max_bytes, max_pixels=max_pixels, top_k=top_k,
                              threads=threads, spin=spin, score_threshold=score_threshold)
    typer.echo(f"serving {package} on http://{host}:{port}/  (API docs: http://{host}:{port}/docs)", err=True)
    serve(settings, host=host, port=port, workers=workers)


def video_command(
    package: Path = typer.Argument(..., help="Package folder written by `pixelforge export`."),
    source: str = typer.Argument(..., metavar="INPUT", help="Video file, or a webcam index such as 0."),
    out: Path = typer.Option(..., "--out", help="Video to write (.mp4) with the label overlay."),
    max_frames: Optional[int] = typer.Option(None, min=1, help="Stop after this many frames (webcams run until then)."),
    precision: Optional[str] = typer.Option(None, help="fp32 | int8 | fp16 (default: the package's default)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary to stdout."),
    score_threshold: float = typer.Option(0.3, help="detect: lowest box score drawn."),
) -> None:
    """Run a package on a video (or webcam) frame by frame and write it with the label (classify), boxes (detect) or
    mask overlay (segment) and the FPS drawn on."""
    from pixelforge.deploy.video import run_video

    result = run_video(package, source, out, max_frames=max_frames, precision=precision, score_threshold=score_threshold)
    summary = {"out": str(result.out), "frames": result.frames, "seconds": round(result.seconds, 3),
               "fps": round(result.fps, 2)}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(f"{result.frames} frames in {result.seconds:.2f} s: {result.fps:.1f} FPS  -> {result.out}")
