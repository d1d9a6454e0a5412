"""`pixelforge serve`: a package of any task behind an HTTP API and a web page, on the torch-free runtime.

    server.py      the FastAPI app: /v1/predict, /healthz, /v1/model, /docs and the web page at /
    uploads.py     multipart uploads parsed in memory, with byte limits enforced while they stream in
    batcher.py     micro-batching of concurrent requests onto one model call (classification crops)
    static/        index.html, the web page (plain HTML/JS; one view per task, looked up by the model's task)
"""
