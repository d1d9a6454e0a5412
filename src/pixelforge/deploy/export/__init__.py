"""The torch side of deployment: generic machinery that task exporters build packages with.

    folder.py      the staged package folder (a package appears whole or not at all), its JSON files, option checks
    onnx.py        ONNX (and TorchScript) export helpers, with the converters' chatter kept quiet
    parity.py      max |Δlogit|, top-1 agreement, accuracy change, and the pass/fail rules (classification logits)
    quantize.py    ONNX Runtime static int8 (QDQ, per-channel), dynamic int8 (text models) and fp16 (whole or mixed)
    precision.py   the other tasks' --fp16/--int8: the added model listed in package.json, PSNR, refusal lines
    card.py        the package's model_card.md: the run's card (or one generated) plus export settings and parity
    torchscript.py the TorchScript model loader the torch-free runtime is handed for `--format torchscript`

Each task's own exporter is `pixelforge.tasks.<name>.export.export_package(run, out, **options)`; the box tasks
share their parity check in `pixelforge.tasks.common.boxes_export`. Layer: above `engine`, below `tasks`; nothing
here imports torch at module level.
"""
