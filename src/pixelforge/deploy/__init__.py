"""Deployment: turn a run folder into a package (ONNX or TorchScript) and run it without PyTorch. Split by stage,
each an import layer of its own (an import only points down):

    runtime/     torch-free: reading packages, preprocessing, one runtime class per task behind one interface
                 (`TaskRuntime`), the registry {task: runtime class}, `load_runtime`, `predict_package`; lowest
    export/      the torch side's generic machinery: staged package folders, ONNX export helpers, parity rules,
                 int8/fp16 (quantize.py), the model card, the TorchScript loader; each task's exporter is
                 `pixelforge.tasks.<name>.export.export_package`
    serve/       `pixelforge serve`: the FastAPI app, in-memory uploads, micro-batching, the web page
    video.py     `pixelforge video`: frame-by-frame inference on a video file or webcam with the task's overlay
    commands.py  the `export`, `serve`, `video` CLI commands and `predict` for packages

Only the runtime's registry maps task names to code; nothing else here asks which task a package is for. Nothing
imported here at module level pulls in torch: the runtime path must stay light.
"""
