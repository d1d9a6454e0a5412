"""What every runtime of the cached feature graph offers the feature path: features, and features with their map.

ONNX Runtime (features.py `OnnxBackbone`) and OpenVINO (openvino_features.py) differ only in how they run the graph.
"""

from __future__ import annotations

import torch


class GraphBackbone:
    """A frozen backbone's exported graph (a `features` output, and a `map` one when `has_map`) run by a runtime:
    subclasses give `_run(names, array)`, the named outputs for a float32 NCHW array."""

    has_map = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._outputs(["features"], x)[0]

    def features_and_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """([N, dim] pooled features, [N, C, h, w] the map they pool); only when `has_map`."""
        return tuple(self._outputs(["features", "map"], x))

    def _outputs(self, names: list[str], x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.from_numpy(a) for a in self._run(names, x.detach().cpu().float().contiguous().numpy())]
