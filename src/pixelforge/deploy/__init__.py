"""Deployment: turn a run folder into a package (ONNX or TorchScript) and run it without PyTorch.

    export.py      run -> package folder, kept only when its parity check against PyTorch passes
    parity.py      max |Δlogit|, top-1 agreement, accuracy change, and the pass/fail rules
    quantize.py    ONNX Runtime static int8 quantization (QDQ, per-channel) and fp16 conversion
    card.py        the package's model_card.md
    package.py     reading a package's JSON files (torch-free)
    preprocess.py  image decoding and the eval transform in NumPy/PIL (torch-free)
    runtime.py     ONNX Runtime inference over arrays, images and files (torch-free)
    uploads.py     multipart uploads parsed in memory, with byte limits
    batcher.py     micro-batching of concurrent requests onto one model call
    server.py      FastAPI app: /v1/predict, /healthz, /v1/model, /docs and a web page at /
    video.py       frame-by-frame inference on a video file or webcam with an overlay
    commands.py    the `export`, `serve`, `video` CLI commands and `predict` for packages
    export_detection.py / export_segmentation.py   detector / segmenter packages with box / mask parity
    dense_runtime.py   detection and segmentation packages behind one interface for serve and video (torch-free)
    dense_detection.py the detection package adapter (ONNX Runtime, boxes in the original image's pixels)
    dense_api.py   the JSON answers for boxes and masks; draw.py: mask PNG/RLE and OpenCV drawing

Nothing imported here at module level pulls in torch: the runtime path must stay light.
"""
