"""The deployment commands of the `pixelforge` CLI: export, serve, video, and `predict` on a package.

Registered in `pixelforge.cli` one line each. This module imports only typer at import time; torch is imported
by `export` alone (it needs the PyTorch model), never by `predict`, `serve` or `video` on an ONNX package. Nothing
here asks which task a run or package is for: `export` hands the run to its task (`get_task(name).export`), the
others to the package's runtime (`pixelforge.deploy.runtime.load_runtime`).
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
    format: Optional[str] = typer.Option(None, "--format", help="classify: onnx | torchscript (onnx)."),
    int8: bool = typer.Option(False, "--int8", help="classify, segment, denoise: add a static int8 model calibrated on "
                                                           "training images (the package's default then)."),
    fp16: bool = typer.Option(False, "--fp16", help="classify, segment, denoise, style, gan: add an fp16 model "
                                                           "(for GPU runtimes), checked against fp32."),
    data: Optional[str] = typer.Option(None, help="Data for the parity check and calibration (default: the run's)."),
    parity_images: int = typer.Option(256, min=1, help="Validation images the parity check uses (at most)."),
    calibration_images: Optional[int] = typer.Option(None, min=1, help="--int8: training images that calibrate "
                                                                       "int8 ranges (classify 128, segment 32, denoise 16)."),
    calibration: Optional[str] = typer.Option(None, help="--int8: calibration minmax | entropy | percentile "
                                                         "(minmax)."),
    tolerance: Optional[float] = typer.Option(None, min=0.0, help="classify: allowed max |Δlogit| (fp32), relative to "
                                                         "max(1, max |logit|) (1e-3)."),
    max_int8_drop: Optional[float] = typer.Option(None, min=0.0, help="--int8: allowed drop; classify: accuracy "
                                                             "points, at least one image (1.0); segment: mIoU points (2.0); "
                                                             "denoise: PSNR dB (0.5)."),
    fp16_tolerance: Optional[float] = typer.Option(None, min=0.0, help="classify: allowed max |Δlogit| for fp16, relative "
                                                              "like --tolerance (5e-2)."),
) -> None:
    """Export a run to a package (model, preprocessing, classes, model card), checked against PyTorch."""
    from pixelforge.api.export import export

    _logging()
    # Options left unset stay with the task's exporter's defaults; a task refuses the ones it cannot honour.
    chosen = {"format": format, "int8": int8, "fp16": fp16, "calibration_images": calibration_images,
              "calibration": calibration, "tolerance": tolerance, "max_int8_drop": max_int8_drop,
              "fp16_tolerance": fp16_tolerance}
    options = {name: value for name, value in chosen.items() if value is not None and value is not False}
    result = export(run, out, data=data, parity_images=parity_images, **options)
    package = Path(getattr(result, "package_dir", result))  # classify answers an ExportResult, the others a Path
    files = ", ".join(sorted(p.name for p in package.iterdir()))
    seconds = getattr(result, "seconds", None)
    typer.echo(f"package: {package}  ({files})" + (f"  in {seconds:.1f} s" if seconds is not None else ""))


def predict_package(package: Path, paths: list[str], out: Path | None = None, precision: str | None = None,
                    **options) -> list[dict]:
    """`pixelforge predict PACKAGE ...` for a package of any task, via ONNX Runtime: the same result dicts (and
    files in `out`, default ./predictions, never inside the package, for box, mask and image tasks) as predicting from a run.

    Options are the package's task's (classify: top_k, batch_size; detect, instance: score_threshold, nms_iou);
    a progress bar is shown on a terminal when there are more images than one batch.
    """
    from pixelforge.data.sources import collect_paths
    from pixelforge.deploy.export.torchscript import TORCH_LOADERS
    from pixelforge.deploy.runtime import predict_package as run_package

    files = collect_paths(list(paths))  # counted here for the progress bar; no files is the runtime's error
    if not sys.stderr.isatty() or len(files) <= options.get("batch_size", 32):
        return run_package(package, files, out, precision=precision, loaders=TORCH_LOADERS, **options)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("predict", total=len(files))
        return run_package(package, files, out, precision=precision, loaders=TORCH_LOADERS,
                           progress=lambda n: bar.advance(task, n), **options)


def predict_any_package(package: Path, paths: list[str], out: Path | None, options: dict):
    """`pixelforge predict PACKAGE ...` for the CLI: (result dicts, the function that writes one result's line).

    The line comes from the package's runtime class, not the task registry: a package predicts without torch.
    """
    from pixelforge.deploy.runtime import runtime_class

    results = predict_package(package, paths, out, **options)
    return results, runtime_class(package).describe_result


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
    max_files: int = typer.Option(32, min=1, help="Most images in one request (413 above, while the body arrives)."),
    top_k: int = typer.Option(5, min=1, help="Default number of labels per image (?top_k= overrides)."),
    threads: Optional[int] = typer.Option(None, min=1, help="ONNX Runtime threads (default: all cores)."),
    spin: bool = typer.Option(False, "--spin/--no-spin", help="Let ONNX Runtime threads busy-wait (dedicated cores only)."),
    score_threshold: float = typer.Option(0.3, help="detect: default lowest box score returned (?score_threshold= overrides)."),
) -> None:
    """Serve a package over HTTP: POST /v1/predict, GET /healthz, GET /v1/model, /docs, and a web page at /."""
    from pixelforge.deploy.runtime import runtime_class
    from pixelforge.deploy.serve.server import ServerSettings, refuse_unservable, serve

    # A clear error before uvicorn starts: not a package, a task no runtime runs, or one the server cannot answer.
    refuse_unservable(runtime_class(package), package)
    settings = ServerSettings(str(package), api_key=api_key, precision=precision, max_batch=max_batch,
                              max_wait_ms=max_wait_ms, max_bytes=max_bytes, max_pixels=max_pixels, max_files=max_files,
                              top_k=top_k, threads=threads, spin=spin, score_threshold=score_threshold)
    typer.echo(f"serving {package} on http://{host}:{port}/  (API docs: http://{host}:{port}/docs)", err=True)
    serve(settings, host=host, port=port, workers=workers)


# Runs whose packages take no frames (deploy/runtime/gan.py and clip.py say so too, for a package).
FRAMELESS_RUNS = {
    "gan": "{run}: a GAN run generates images, it takes no video: `pixelforge generate {run} --out DIR`",
    "clip": ("{run}: a clip run labels images by class names given with them, which `pixelforge video` does not "
             "take: pixelforge zeroshot IMAGES --run {run} --labels \"a,b\""),
}


def video_command(
    package: Path = typer.Argument(..., metavar="RUN_OR_PACKAGE", help="Package folder written by `pixelforge "
                                   "export`, or a run folder (exported to a temporary package first)."),
    source: str = typer.Argument(..., metavar="INPUT", help="Video file, or a webcam index such as 0."),
    out: Path = typer.Option(..., "--out", help="Video to write (.mp4, .m4v, .mov, .mkv or .avi) with the task's "
                             "overlay; never overwritten."),
    max_frames: Optional[int] = typer.Option(None, min=1, help="Stop after this many frames (webcams run until then)."),
    precision: Optional[str] = typer.Option(None, help="fp32 | int8 | fp16 (default: the package's default)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary to stdout."),
    score_threshold: float = typer.Option(0.3, help="detect: lowest box score drawn."),
    blend: float = typer.Option(0.0, min=0.0, max=0.95, help="style: weight of the previous output on unchanged "
                                                             "pixels (0 = none; 0.6 reduces flicker)."),
) -> None:
    """Run a package on a video (or webcam) frame by frame and write it with the task's output and the FPS drawn on:
    label (classify), boxes (detect), masks (segment, instance), caption (caption), or the denoised, decoded
    (compress) or stylized (style) frame itself. GAN and CLIP packages take no frames (`generate`, `zeroshot`)."""
    import tempfile

    from pixelforge.deploy.video import check_out, run_video
    from pixelforge.errors import PixelforgeError

    check_out(out)  # before a run's export, which takes a while
    with tempfile.TemporaryDirectory(prefix="pixelforge-video-") as scratch:
        run = None
        if (package / "config.yaml").is_file() and (package / "checkpoints").is_dir():  # a run: export it first
            from pixelforge.api.export import export
            from pixelforge.tasks.config import load_config

            task = load_config(package / "config.yaml").task
            if task in FRAMELESS_RUNS:  # refused before the export, which takes a while, as its package would be
                raise PixelforgeError(FRAMELESS_RUNS[task].format(run=package))
            exported = export(package, Path(scratch) / "package")
            run, package = package, Path(getattr(exported, "package_dir", exported))  # classify: an ExportResult
        try:
            result = run_video(package, source, out, max_frames=max_frames, precision=precision,
                               score_threshold=score_threshold, blend=blend)
        except PixelforgeError as error:
            if run is None:
                raise
            # The scratch package is gone once the command ends: what the user gave and can act on is the run.
            raise PixelforgeError(str(error).replace(str(package), str(run))) from None
    summary = {"out": str(result.out), "frames": result.frames, "seconds": round(result.seconds, 3),
               "fps": round(result.fps, 2), **(result.summary or {})}
    if result.note:
        summary["note"] = result.note
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        frames = f"{result.frames} frame{'s' if result.frames != 1 else ''}"
        typer.echo(f"{frames} in {result.seconds:.2f} s: {result.fps:.1f} FPS  -> {result.out}")
        if result.summary:
            typer.echo("  ".join(f"{k} {v:.3f}" for k, v in result.summary.items()))
        if result.note:
            typer.echo(f"note: {result.note}")
