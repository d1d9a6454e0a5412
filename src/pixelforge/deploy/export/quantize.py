"""Lower-precision copies of an exported ONNX model: static int8 (calibrated) and fp16.

int8 follows ONNX Runtime's recipe for CNNs on CPU (onnxruntime.ai/docs/performance/model-optimizations/quantization):
pre-process first (shape inference and graph fusions, so BatchNorm is folded and Conv+activation fuse), then static
quantization in QDQ format with uint8 activations and per-channel int8 weights, the activation ranges calibrated
on real training images. Per-channel weights matter for depthwise convolutions (EfficientNet, MobileNet), whose
channels have very different ranges.

fp16 halves the model for GPU runtimes; inputs and outputs stay float32 so the runtime code does not change.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

log = logging.getLogger("pixelforge")


def quantize_int8(fp32_model: Path, out: Path, calibration_batches: Iterable[np.ndarray], method: str = "minmax") -> Path:
    """Write a static QDQ int8 copy of `fp32_model` to `out`, calibrated on the normalized NCHW batches given.

    Args:
        fp32_model: the exported float32 ONNX model (dynamic batch axis).
        out: where to write the int8 model.
        calibration_batches: float32 batches preprocessed exactly like inference inputs (for a model of several
            inputs, dicts of input name -> batch).
        method: minmax | entropy | percentile (ONNX Runtime's calibration methods).

    Example:
        >>> quantize_int8(Path("pkg/model.onnx"), Path("pkg/model.int8.onnx"), batches)  # doctest: +SKIP
    """
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    input_name = onnx.load(str(fp32_model), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration_batches)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else batch if isinstance(batch, dict) else {input_name: batch}

    with tempfile.TemporaryDirectory(prefix="pixelforge-quant-") as tmp, _quiet_calibration():
        prepared = Path(tmp) / "prepared.onnx"
        try:  # in `tmp`: a failing symbolic shape inference saves its half-done model in the working folder
            with contextlib.chdir(tmp):
                quant_pre_process(str(fp32_model), str(prepared))
        except Exception:  # noqa: BLE001 - symbolic shape inference gives up on some graphs (a U-Net's resizes)
            log.info("int8: symbolic shape inference failed; pre-processing with ONNX's shape inference only")
            prepared.unlink(missing_ok=True)
            quant_pre_process(str(fp32_model), str(prepared), skip_symbolic_shape=True)
        reader, cache = Reader(), None
        if method in CALIBRATOR_OPTIONS:  # ranges computed here, with options quantize_static cannot pass on
            cache, reader = _calibrate(prepared, Path(tmp), reader, methods[method], CALIBRATOR_OPTIONS[method]), None
        quantize_static(str(prepared), str(out), reader, quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=methods[method], calibration_cache_path=cache)
    return out


# ONNX Runtime's entropy calibration defaults to as many histogram bins as quantized bins (128), and quantize_static
# cannot change that: the search for the threshold then has only the whole range to choose, which is minmax's
# answer. TensorRT's recipe (Migacz 2017, "8-bit inference with TensorRT"), which the method comes from, searches a
# 2048-bin histogram for the 128-bin clipping that loses least information.
CALIBRATOR_OPTIONS = {"entropy": {"num_bins": 2048, "num_quantized_bins": 128}}


def _calibrate(model: Path, folder: Path, reader, method, options: dict) -> Path:
    """Activation ranges by `method` with `options`, in a calibration cache file that quantize_static reads."""
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    calibrator = create_calibrator(model, None, augmented_model_path=str(folder / "augmented.onnx"),
                                   calibrate_method=method, extra_options=options)
    calibrator.collect_data(reader)
    cache = folder / "calibration.json"
    save_tensors_data(calibrator.compute_data(), cache)
    return cache


@contextlib.contextmanager
def _quiet_calibration():
    """ONNX Runtime's calibration prints its progress ("Collecting tensor data and making histogram ...") and logs
    at INFO (per-channel quantization of a rank-1 weight, a norm layer's scale, warns at WARNING), partly on the root
    logger: none of it is for the user. Python's stdout and those loggers at ERROR, for
    the block only."""
    loggers = [logging.getLogger(), logging.getLogger("onnxruntime")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.level, logging.ERROR))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def convert_fp16(fp32_model: Path, out: Path) -> Path:
    """Write an fp16 copy of `fp32_model` whose inputs and outputs stay float32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32_model)), keep_io_types=True)
    onnx.save(model, str(out))
    return out
