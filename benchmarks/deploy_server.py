"""Deployment benchmark D2: HTTP throughput at 16 concurrent clients, `pixelforge serve` against a naive server.

    python -m benchmarks.deploy_server                    # uses (or makes) the D1 run and package
    python -m benchmarks.deploy_server --run runs/lite0   # a Lite0 run; its package is made beside it if missing

The naive side is the tutorial endpoint: FastAPI, `async def predict(file: UploadFile)`, PIL decode, torchvision
Resize/CenterCrop/ToTensor/Normalize, the PyTorch model called once per request at batch 1, run twice: with torch's
default threads (one per core, which stalls badly when the client's threads share the cores) and with one thread;
the ratio is taken against the faster of the two. The pixelforge side is
the real `pixelforge serve PACKAGE` command (int8 package, micro-batching). Each server runs alone in its own
process on 127.0.0.1; the same client (16 threads of httpx, keep-alive) posts the same real JPEGs (the run's
validation photos) to both, a warm-up first, then a fixed number of requests. Reported: images/s, p50/p99 latency,
errors, and the ratio (goal: pixelforge >= 3x naive).
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 3.0


def naive_app(run_dir: str, threads: int = 0):
    """The per-request PyTorch endpoint most tutorials show (the baseline); `threads` > 0 sets torch's threads."""
    import io

    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    from fastapi import FastAPI, File, UploadFile
    from PIL import Image
    from torchvision import transforms

    from pixelforge.tasks.classify.inference import load_run

    loaded = load_run(run_dir)
    model, spec = loaded.model.eval(), loaded.model.spec
    transform = transforms.Compose([transforms.Resize(loaded.short_side), transforms.CenterCrop(loaded.config.img_size),
                                    transforms.ToTensor(), transforms.Normalize(spec.mean, spec.std)])
    app = FastAPI()

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.post("/v1/predict")
    async def predict(file: UploadFile = File(...)):
        image = Image.open(io.BytesIO(await file.read())).convert("RGB")
        with torch.no_grad():
            probs = model(transform(image).unsqueeze(0)).softmax(1)[0]
        score, index = probs.max(0)
        return {"label": loaded.classes[int(index)], "score": float(score)}

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(command: list[str], port: int, timeout: float = 300) -> subprocess.Popen:
    import httpx

    # The server's log goes to a file: an unread pipe fills up (uvicorn logs every request) and blocks the server.
    log = tempfile.NamedTemporaryFile("w+", prefix="deploy-bench-server-", suffix=".log", delete=False)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    process.log_path = log.name
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {Path(log.name).read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"server on port {port} did not start in {timeout:.0f} s")


def load(url: str, images: list[bytes], requests: int, clients: int) -> dict:
    """`requests` POSTs spread over `clients` threads; latencies, errors and images/s."""
    import httpx

    latencies, errors = [], []

    def client_loop(worker: int) -> None:
        with httpx.Client(timeout=120) as client:
            for i in range(worker, requests, clients):
                started = time.perf_counter()
                try:
                    response = client.post(url, files={"file": ("photo.jpg", images[i % len(images)], "image/jpeg")})
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                if not ok:
                    errors.append(i)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"requests": requests, "clients": clients, "seconds": round(seconds, 2),
            "img_s": round(requests / seconds, 1), "p50_ms": round(1000 * statistics.median(ordered), 1),
            "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1), "errors": len(errors)}


def measure(name: str, command: list[str], port: int, images: list[bytes], requests: int, clients: int) -> dict:
    process = start_server(command, port)
    try:
        url = f"http://127.0.0.1:{port}/v1/predict"
        load(url, images, min(64, requests), clients)  # warm-up: connections, kernels, allocator
        result = load(url, images, requests, clients)
    finally:
        process.terminate()
        process.wait(timeout=30)
        Path(process.log_path).unlink(missing_ok=True)
    print(f"{name:26s} {result['img_s']:7.1f} img/s  p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  "
          f"errors {result['errors']}", flush=True)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a tf_efficientnet_lite0 run (default: D1's)")
    parser.add_argument("--requests", type=int, default=320)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--serve-naive", type=int, default=None, help=argparse.SUPPRESS)  # internal: run the baseline
    parser.add_argument("--naive-threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "deploy_server.json")
    args = parser.parse_args(argv)
    if args.serve_naive:
        import uvicorn

        uvicorn.run(naive_app(str(args.run), args.naive_threads), host="127.0.0.1", port=args.serve_naive,
                    log_level="warning")
        return {}

    from benchmarks.deploy_inference import DATA, ensure_run_and_package
    from pixelforge.tasks.classify.task import prepare_data
    from pixelforge.tasks.classify.inference import load_run

    run, package = ensure_run_and_package(args.run, DATA, 3)
    run, package = run.resolve(), package.resolve()  # the servers run in their own working directory
    source, _ = prepare_data(load_run(run).config)
    images = [s.path.read_bytes() for s in source.split("val")]
    print(f"{len(images)} validation JPEGs, {args.requests} requests from {args.clients} clients; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    naive = {}
    for threads in (0, 1):  # torch's default (one thread per core) and one thread: the baseline gets its better one
        port = free_port()
        naive[f"threads_{threads or 'default'}"] = measure(
            f"naive ({threads or 'default'} threads)", [sys.executable, "-m", "benchmarks.deploy_server", "--run", str(run),
                                                        "--serve-naive", str(port), "--naive-threads", str(threads)],
            port, images, args.requests, args.clients)
    port = free_port()
    pixelforge = measure("pixelforge", [sys.executable, "-c", "from pixelforge.cli import main; main()", "serve",
                                        str(package), "--port", str(port)], port, images, args.requests, args.clients)
    best_naive = max(r["img_s"] for r in naive.values())
    ratio = pixelforge["img_s"] / best_naive
    print(f"pixelforge / best naive: {ratio:.2f}x (goal >= {GOAL_RATIO:.0f}x: {'met' if ratio >= GOAL_RATIO else 'NOT met'})")
    report = {"naive": naive, "pixelforge": pixelforge, "ratio": round(ratio, 2), "goal_ratio": GOAL_RATIO,
              "load_average": os.getloadavg()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {args.out}")
    return report


if __name__ == "__main__":
    main()
