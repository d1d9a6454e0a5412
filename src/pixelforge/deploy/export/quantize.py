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
                        calibrate_method=methods[method], calibration_cache_path=cache,
                        nodes_to_exclude=shape_arithmetic(onnx.load(str(prepared))))
    return out


def shape_arithmetic(model) -> list[str]:
    """Names of the nodes that compute from tensor shapes and Constant nodes only, not from an activation.

    timm's "same" padding computes each convolution's pads from its input's shape at run time (Shape, Div, Ceil, Sub,
    Mul, ...; with a fixed input size the tracer leaves Ceil of a Constant). Quantized, those pad sizes were rounded
    to the calibrated uint8 grid, and a 32 px CLIP image tower's int8 model stopped with "QLinearConv ... Invalid
    input shape: {4,4}"; in fp16, ONNX Runtime's CPU provider has no Ceil kernel and every session warned "Could not
    find a CPU kernel and hence can't constant fold". They are integers, not activations: both keep them float32.
    """
    weights = {t.name for t in model.graph.initializer}
    scalar: set[str] = set()  # outputs of Shape and Constant nodes, and of arithmetic on them
    names = []
    for node in model.graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type == "Constant":
            scalar.update(node.output)
        elif node.op_type == "Shape" or (inputs and any(i in scalar for i in inputs)
                                         and all(i in scalar or i in weights for i in inputs)):
            scalar.update(node.output)
            names.append(node.name)
    return names


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


# Dynamic quantization, ONNX Runtime's choice for text and transformer models (onnxruntime.ai/docs/performance/
# model-optimizations/quantization): only these operators' weights become int8. Convolutions are left out: CPU runs
# a dynamically quantized Conv (ConvInteger) slower than the float one, and an image encoder is quantized statically.
DYNAMIC_OPS = ["MatMul", "Gather", "LSTM", "Attention"]


def quantize_dynamic_int8(fp32_model: Path, out: Path) -> Path:
    """Write a dynamic int8 copy of `fp32_model` (DYNAMIC_OPS' weights int8, per tensor) to `out`; its Gemm nodes
    (PyTorch's Linear layers trace to Gemm, which ONNX Runtime does not quantize dynamically) become MatMul + Add."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = _gemm_as_matmul(onnx.load(str(fp32_model)))
    with _quiet_calibration():
        quantize_dynamic(model, str(out), weight_type=QuantType.QInt8, op_types_to_quantize=DYNAMIC_OPS)
    return out


def _gemm_as_matmul(model):
    """`model` with each Gemm whose weight is an initializer (alpha = beta = 1, A not transposed) written as
    MatMul(A, W or W transposed) + C: the same function, in operators dynamic quantization takes."""
    from onnx import helper, numpy_helper

    weights = {t.name: t for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "Gemm" or node.input[1] not in weights or attrs.get("transA", 0)
                or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(weights[node.input[1]])
        name = f"{node.input[1]}_matmul"
        model.graph.initializer.append(numpy_helper.from_array(weight.T if attrs.get("transB", 0) else weight, name))
        product = f"{node.output[0]}_matmul" if len(node.input) > 2 and node.input[2] else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], name], [product], name=f"{node.name}_matmul"))
        if product != node.output[0]:
            nodes.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_add"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def convert_fp16(fp32_model: Path, out: Path, fp16_nodes=None) -> Path:
    """Write an fp16 copy of `fp32_model` whose inputs and outputs stay float32 (and its shape arithmetic, as
    `shape_arithmetic` finds it).

    `fp16_nodes(node) -> bool`, when given, makes a mixed model: only the nodes it accepts are converted. Control flow
    (If, Loop) then stays float32 whole, subgraphs included: the converter rewrites a subgraph's types even for a
    blocked node, and a torchvision detector's box-decoding If no longer loaded ("Type (tensor(float)) of output arg
    (max_coordinate) ... does not match expected type (tensor(float16))").
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # The shape arithmetic stays float32: converted, timm's "same" padding (Ceil, Sub, ... on the input's shape) had
    # no fp16 CPU kernels, and every session warned "Could not find a CPU kernel and hence can't constant fold".
    model = onnx.load(str(fp32_model))
    blocked = set(shape_arithmetic(model))
    flow = {node.name: list(node.attribute) for node in model.graph.node if _has_subgraph(node)}
    if fp16_nodes is not None:
        blocked |= {node.name for node in model.graph.node if node.name in flow or not fp16_nodes(node)}
    model = convert_float_to_float16(model, keep_io_types=True, node_block_list=sorted(blocked))
    if fp16_nodes is not None:
        _restore_subgraphs(model, flow)
    onnx.save(model, str(out))
    return out


def _has_subgraph(node) -> bool:
    import onnx

    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)


def _restore_subgraphs(model, attributes: dict) -> None:
    """Put the float32 subgraphs of the blocked control-flow nodes back, and feed the outer tensors they read that
    became fp16 through a Cast back to float32."""
    import onnx
    from onnx import TensorProto, helper

    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.input]}
    types.update({out: next(a.i for a in node.attribute if a.name == "to") for node in model.graph.node
                  if node.op_type == "Cast" for out in node.output})
    casts: dict[str, object] = {}

    def rewire(graph) -> None:
        inner = {o for n in graph.node for o in n.output} | {t.name for t in graph.initializer} | {
            i.name for i in graph.input}
        for node in graph.node:
            for index, name in enumerate(node.input):
                if name and name not in inner and types.get(name) == TensorProto.FLOAT16:
                    if name not in casts:
                        casts[name] = helper.make_node("Cast", [name], [f"{name}_fp32"], name=f"{name}_to_fp32",
                                                       to=TensorProto.FLOAT)
                    node.input[index] = f"{name}_fp32"
            for attribute in node.attribute:
                for sub in ([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs):
                    rewire(sub)

    nodes = list(model.graph.node)
    for node in nodes:
        if node.name in attributes:
            del node.attribute[:]
            node.attribute.extend(attributes[node.name])
            for attribute in node.attribute:
                for sub in ([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs):
                    rewire(sub)
    ordered = [cast for name, cast in casts.items() if name in {i.name for i in model.graph.input}]
    for node in nodes:  # each Cast right after the node making its input, so the graph stays topologically sorted
        ordered += [node, *(casts[out] for out in node.output if out in casts)]
    del model.graph.node[:]
    model.graph.node.extend(ordered)
