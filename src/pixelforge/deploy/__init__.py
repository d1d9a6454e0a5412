"""Deployment: turn a run folder into a package (ONNX or TorchScript) and run it without PyTorch.

    export.py      run -> package folder, with a parity check against the PyTorch model (and int8/fp16)
    package.py     reading and writing a package's JSON files (torch-free)
    preprocess.py  image decoding and the eval transform in NumPy/PIL (torch-free)
    runtime.py     ONNX Runtime inference over arrays, images and files (torch-free)
    quantize.py    ONNX Runtime static int8 quantization (QDQ, per-channel)
    server.py      FastAPI app: micro-batched /v1/predict, /healthz, /v1/model and a web page at /
    video.py       frame-by-frame inference on a video file or webcam with an overlay
    commands.py    the `export`, `serve`, `video` CLI commands and `predict` for packages

Nothing imported here at module level pulls in torch: the runtime path must stay light.
"""
