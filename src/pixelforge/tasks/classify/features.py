"""The cached-feature path for `--strategy linear`: run the frozen backbone once, then train only the head.

With the backbone frozen, every epoch would push the same images through the same network again. Instead each
training image is augmented `views` times and its pooled features are computed once; the head then trains on those
feature vectors in a fraction of a second per epoch.

On a CPU the frozen backbone runs as an exported ONNX graph in fp32: compiled by OpenVINO where it is installed
(openvino_features.py; 1.2-1.6x ONNX Runtime on Lite0, lever L25), else by ONNX Runtime. Either does the same
arithmetic as eager PyTorch (features agree to ~1e-5, checked on the first batch before an engine is trusted, and by
tests/engine/test_features.py), several times faster (benchmarks/: about 6x for EfficientNet-Lite0 on 2 cores).
If an engine is missing, fails or differs, the next one is tried, and the eager backbone runs last (channels_last,
no grad); anywhere but the CPU, eager runs. `PIXELFORGE_FEATURE_ENGINE=eager|onnxruntime|openvino` forces one.
bf16 autocast was measured too and not kept: slower than ONNX Runtime and not exact.

The exported graph is cached in `$PIXELFORGE_HOME/onnx-features/`, keyed by a hash of the backbone's class, weights
and input size: exporting Lite0 (and importing `onnx` to do it) costs seconds of every run that the same backbone
at the same size would redo; the first-batch check above still runs on every run, cached graph or not.

When the backbone's pooled features are the spatial mean of the feature map Grad-CAM explains (global average
pooling, e.g. Lite0 at 224 px), the graph also outputs that map (`map`): with the linear head, the report's Grad-CAM
gallery is then CAM on this map and its faithfulness passes run through the same session, with no eager backbone
(explain/cam.py `linear_head_cam`; issue 20, lever L22).
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from functools import partial

import torch
from torch.utils.data import DataLoader, Dataset

from pixelforge.engine.threads import single_threaded_collate
from pixelforge.tasks.classify.graph_backbone import GraphBackbone

log = logging.getLogger("pixelforge")

ENGINES = ("auto", "openvino", "onnxruntime", "eager")
_CHECK_IMAGES = 2  # images compared between a graph engine and eager before the fast path is trusted
_GRAPH_FORMAT = "features+map"  # in the cache key: graphs cached before the map output (L22) are not reused


class FeatureDataset(Dataset):
    """(features, label) pairs; index `i` is view `i // n` of sample `i % n`. `samples` (optional): the images the
    rows belong to, in order, so the validation features can be reused after training (inference.CachedFeatures)."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, samples: list | None = None):
        self.features, self.labels, self.samples = features, labels, samples  # [views, n, dim], [n]

    def __len__(self) -> int:
        return self.features.shape[0] * self.features.shape[1]

    def __getitem__(self, index: int):
        view, sample = divmod(index, self.features.shape[1])
        return self.features[view, sample], self.labels[sample]


class OnnxBackbone(GraphBackbone):
    """`graph` (ONNX bytes, batch dimension dynamic) run by ONNX Runtime in fp32 on the CPU."""

    def __init__(self, graph: bytes, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # Idle ORT threads would otherwise spin between batches and steal the cores that augment the next batch.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.has_map = "map" in [output.name for output in self.session.get_outputs()]

    def _run(self, names: list[str], array):
        return self.session.run(names, {self.input_name: array})


class _FeaturesAndMap(torch.nn.Module):
    """The backbone, returning (pooled features, the output of `layer`) for export."""

    def __init__(self, backbone: torch.nn.Module, layer: torch.nn.Module):
        super().__init__()
        self.backbone, self.layer = backbone, layer

    def forward(self, x: torch.Tensor):
        saved = {}
        handle = self.layer.register_forward_hook(lambda module, inputs, output: saved.__setitem__("map", output))
        try:
            features = self.backbone(x)
        finally:
            handle.remove()
        return features, saved["map"]


def pooled_map_layer(backbone: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module | None:
    """Grad-CAM's target layer (explain/cam.py), if the backbone's features are its output averaged over space
    (checked on `example`); else None. Only then is CAM on that map the model's Grad-CAM."""
    from pixelforge.explain.cam import find_target_layer

    try:
        layer = find_target_layer(backbone, example.shape[-1])[1]
        with torch.no_grad():
            features, feature_map = _FeaturesAndMap(backbone, layer).eval()(example[:1])
    except Exception:  # noqa: BLE001 - no spatial layer, or an unusual output: no map, the graph still works
        return None
    if feature_map.ndim != 4 or features.shape != feature_map.shape[:2]:
        return None
    pooled = feature_map.float().mean((2, 3))
    return layer if torch.allclose(features.float(), pooled, rtol=1e-4, atol=1e-5) else None


def export_onnx(backbone: torch.nn.Module, example: torch.Tensor) -> bytes:
    """The backbone as ONNX bytes (batch dimension dynamic).

    The TorchScript exporter takes ~0.4 s for Lite0 and the dynamo one ~6 s, so the first is tried first.
    """
    example = example[:1].detach().cpu().float().contiguous()
    layer = pooled_map_layer(backbone, example)
    if layer is not None:
        try:
            return _export(_FeaturesAndMap(backbone, layer), example, ["features", "map"])
        except Exception:  # noqa: BLE001 - the map is optional: export the features alone
            log.debug("feature graph exported without its map", exc_info=True)
    return _export(backbone, example, ["features"])


def _export(module: torch.nn.Module, example: torch.Tensor, outputs: list[str]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (example,), buffer, input_names=["x"], output_names=outputs,
                              dynamic_axes={name: {0: "batch"} for name in ["x", *outputs]}, dynamo=False)
        except Exception:  # noqa: BLE001 - the legacy exporter may be missing or reject a model: try the new one
            buffer = io.BytesIO()
            torch.onnx.export(module, (example,), buffer, input_names=["x"], output_names=outputs,
                              dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, dynamo=True, verbose=False)
    return buffer.getvalue()


def backbone_key(backbone: torch.nn.Module, example: torch.Tensor) -> str:
    """A hash of what the exported graph depends on: the module's class, every parameter and buffer (names, shapes,
    values), the input's shape less the batch, and the torch version that exports it."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{type(backbone).__module__}.{type(backbone).__qualname__}|{tuple(example.shape[1:])}|"
                  f"{torch.__version__}|{_GRAPH_FORMAT}".encode())
    for name, tensor in backbone.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cached_graph_path(backbone: torch.nn.Module, example: torch.Tensor):
    """Where `cached_export` keeps this backbone's graph at this input size."""
    from pixelforge.data.builtin import cache_root

    return cache_root() / "onnx-features" / f"{backbone_key(backbone, example)}.onnx"


def cached_map_graph(backbone: torch.nn.Module, img_size: int):
    """A runtime on this backbone's cached graph (OpenVINO, else ONNX Runtime, as `PIXELFORGE_FEATURE_ENGINE`
    allows) when it has the `map` output (an earlier run exported and checked it), else None; nothing is exported
    unless the cached file is damaged. None too when PIXELFORGE_FEATURE_ENGINE=eager."""
    engine = os.environ.get("PIXELFORGE_FEATURE_ENGINE", "auto")
    example = torch.zeros(1, 3, img_size, img_size)
    if engine == "eager" or not cached_graph_path(backbone, example).is_file():
        return None
    for name in fast_engines(engine):
        try:
            graph = open_graph(name, backbone, example)
        except Exception as exc:  # noqa: BLE001 - a graph this engine cannot load: the next, else eager explains
            log.debug("cached feature graph unusable by %s (%s)", name, exc)
            continue
        return graph if graph.has_map else None
    return None


def cached_export(backbone: torch.nn.Module, example: torch.Tensor, refresh: bool = False) -> bytes:
    """`export_onnx`'s bytes, from `$PIXELFORGE_HOME/onnx-features/<key>.onnx` when an earlier run exported the same
    backbone at the same size (written atomically; an unwritable cache only costs the export). `refresh` exports
    again and replaces the file (a cached graph ONNX Runtime could not load)."""
    from pixelforge.runs.folder import atomic_write_bytes

    path = cached_graph_path(backbone, example)
    if path.is_file() and not refresh:
        return path.read_bytes()
    graph = export_onnx(backbone, example)
    try:
        atomic_write_bytes(path, lambda handle: handle.write(graph))
    except OSError as exc:
        log.debug("feature graph not cached (%s)", exc)
    return graph


class FeatureExtractor:
    """Pooled features of a frozen backbone, by the fastest engine that gives the eager backbone's numbers.

    The engine is chosen on the first batch (it is the export example and the check sample); `name` then says which
    ("openvino", "onnxruntime" or "eager") and `reason` why, for the run log.

    Example:
        >>> extractor = FeatureExtractor(model.backbone)  # doctest: +SKIP
        >>> features = extractor(images)  # [batch, num_features]  # doctest: +SKIP
        >>> extractor.name  # doctest: +SKIP
        'openvino'
    """

    def __init__(self, backbone: torch.nn.Module, device="cpu", channels_last: bool = True, engine: str | None = None):
        self.backbone, self.device, self.channels_last = backbone, torch.device(device), channels_last
        self.engine = engine or os.environ.get("PIXELFORGE_FEATURE_ENGINE", "auto")
        if self.engine not in ENGINES:
            from pixelforge.errors import PixelforgeError

            raise PixelforgeError(f"PIXELFORGE_FEATURE_ENGINE={self.engine!r}: use one of {', '.join(ENGINES)}")
        self.name: str | None = None
        self.reason = ""
        self._onnx: OnnxBackbone | None = None

    @torch.inference_mode()
    def eager(self, x: torch.Tensor) -> torch.Tensor:
        self.backbone.eval()
        x = x.to(self.device)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x).float().cpu()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.name is None:
            self._choose(x)
        return self._onnx(x) if self._onnx is not None else self.eager(x)

    def close(self) -> None:
        """Free the graph's runtime (ONNX Runtime's arena holds ~1.6 GB after batches of 64 at 224 px); eager stays
        usable."""
        self._onnx = None

    def _choose(self, example: torch.Tensor) -> None:
        self.name, self.reason = "eager", f"forced by PIXELFORGE_FEATURE_ENGINE={self.engine}"
        if self.engine == "eager":
            return
        if self.device.type != "cpu":
            self.reason = f"OpenVINO and ONNX Runtime are used on the CPU only (device {self.device})"
            return
        self.backbone.eval()
        passed_over = []  # why each faster engine before the chosen one was not used
        for engine in fast_engines(self.engine):
            try:
                graph = open_graph(engine, self.backbone, example)
                sample = example[:_CHECK_IMAGES]
                fast, exact = graph(sample), self.eager(sample)
            except Exception as exc:  # noqa: BLE001 - any export/runtime failure means: the next engine, and why
                first_line = (str(exc).splitlines() or [""])[0][:120]
                passed_over.append(f"{_LABELS[engine]} export or run failed ({type(exc).__name__}: {first_line})")
                continue
            error = float((fast - exact).abs().max())
            scale = float(exact.abs().max()) or 1.0
            if error > 1e-3 * max(scale, 1.0):
                passed_over.append(f"{_LABELS[engine]} features differ from eager by {error:.2e}")
                continue
            self._onnx, self.name = graph, engine
            self.reason = f"fp32, max difference from eager {error:.1e} on {len(sample)} images"
            if passed_over:
                self.reason += f"; not {'; not '.join(passed_over)}"
                log.warning("feature extraction uses %s: %s", _LABELS[engine], "; ".join(passed_over))
            return
        self.reason = "; ".join(passed_over)
        log.warning("feature extraction falls back to eager PyTorch: %s", self.reason)


_LABELS = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}


def fast_engines(engine: str = "auto") -> list[str]:
    """The graph engines to try, fastest first: OpenVINO where it is installed (L25), then ONNX Runtime."""
    if engine == "auto":
        from pixelforge.tasks.classify.openvino_features import available

        return ["openvino", "onnxruntime"] if available() else ["onnxruntime"]
    return [engine] if engine in _LABELS else []


def open_graph(engine: str, backbone: torch.nn.Module, example: torch.Tensor) -> GraphBackbone:
    """`backbone`'s cached feature graph at `example`'s size, run by `engine` ("openvino" or "onnxruntime")."""
    if engine == "openvino":
        from pixelforge.tasks.classify.openvino_features import OpenVinoBackbone

        runtime = partial(OpenVinoBackbone, cache_dir=_openvino_cache())
    else:
        runtime = OnnxBackbone
    try:
        return runtime(cached_export(backbone, example))
    except Exception:  # noqa: BLE001 - a damaged cache file: export again (a second failure propagates)
        return runtime(cached_export(backbone, example, refresh=True))


def _openvino_cache():
    """`$PIXELFORGE_HOME/openvino/`, where OpenVINO keeps compiled graphs; None where it cannot be created."""
    from pixelforge.data.builtin import cache_root

    path = cache_root() / "openvino"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path


def feature_batch_size(device) -> int:
    """Images per feature batch. On the CPU, 16: ONNX Runtime ran Lite0 at 224 px over 245 images in 1.45 s at
    batch 16 against 1.96 s at 64 (2 threads, fresh sessions, medians of 3; issue 20, lever L24), since a small
    batch's activations stay in the caches between layers. Elsewhere (eager on a GPU) 64."""
    return 16 if torch.device(device).type == "cpu" else 64


def extract_features(backbone: torch.nn.Module, dataset, views: int, batch_size: int, workers: int,
                     channels_last: bool = True, device="cpu", progress=None,
                     extractor: FeatureExtractor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled backbone features for `views` passes over `dataset` (each pass draws new random augmentations).

    Returns ([views, n, dim] float32 features, [n] labels). Pass one `extractor` to several calls to export once.
    """
    extractor = extractor or FeatureExtractor(backbone, device, channels_last)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        persistent_workers=workers > 0 and views > 1, collate_fn=single_threaded_collate)
    all_views, labels = [], None
    for _ in range(views):
        chunks, chunk_labels = [], []
        for x, y in loader:
            chunks.append(extractor(x))
            chunk_labels.append(y)
            if progress is not None:
                progress(len(y))
        all_views.append(torch.cat(chunks))
        labels = torch.cat(chunk_labels)
    return torch.stack(all_views), labels
