"""CompressAI's rANS coder (its C++ extension `compressai.ans`) with frozen integer CDF tables, torch-free.

The extension is a plain pybind11 module that links only the C++ runtime, so it is loaded from CompressAI's
installed folder without importing CompressAI's package (which imports torch): a package runtime codes `.pfc`
files with the same coder the training side uses, and no torch.

Determinism: the coder reads integer CDF tables only. CompressAI computes those tables from its float entropy
models at `update()` time, which is where its users' cross-machine decoding failures come from; pixelforge
computes them once per run (tasks/compress/tables.py), stores them (`codec.npz`) and copies them into the package,
so the encoder and every decoder use the very same integers.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixelforge.errors import PixelforgeError

_MODULE = "compressai.ans"


def load_ans():
    """The `compressai.ans` extension module; loaded on its own (no torch) unless CompressAI is already imported.

    It is registered under its own name, so a later `import compressai` reuses it: pybind11 refuses to register
    the coder's classes twice in one process."""
    if _MODULE in sys.modules:
        return sys.modules[_MODULE]
    spec = importlib.util.find_spec("compressai")  # finds the folder; imports nothing
    folder = Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None
    found = sorted(folder.glob("ans.*.so")) + sorted(folder.glob("ans.*.pyd")) if folder else []
    if not found:
        raise PixelforgeError("compressai's rANS coder (compressai/ans.*.so) is not installed: "
                              "pip install 'pixelforge[compress]' (see docs/compression.md)")
    loader = importlib.machinery.ExtensionFileLoader(_MODULE, str(found[0]))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(_MODULE, loader))
    loader.exec_module(module)
    sys.modules[_MODULE] = module
    return module


@dataclass(frozen=True)
class CdfTables:
    """One entropy model's frozen tables: one quantized CDF row per index (padded), its length, its offset."""

    cdf: np.ndarray  # int32 [K, L]
    lengths: np.ndarray  # int32 [K]
    offsets: np.ndarray  # int32 [K]

    def lists(self) -> tuple[list, list, list]:
        return self.cdf.tolist(), self.lengths.tolist(), self.offsets.tolist()


def encode(symbols: np.ndarray, indexes: np.ndarray, tables: CdfTables) -> bytes:
    """rANS-code integer `symbols`, each with the CDF row `indexes` picks (same shape)."""
    cdf, lengths, offsets = tables.lists()
    return load_ans().RansEncoder().encode_with_indexes(
        symbols.astype(np.int32).ravel().tolist(), indexes.astype(np.int32).ravel().tolist(), cdf, lengths, offsets)


def decode(string: bytes, indexes: np.ndarray, tables: CdfTables) -> np.ndarray:
    """The int32 symbols of `string`, shaped like `indexes` (the decoder must know the CDF row of each symbol)."""
    cdf, lengths, offsets = tables.lists()
    values = load_ans().RansDecoder().decode_with_indexes(string, indexes.astype(np.int32).ravel().tolist(),
                                                          cdf, lengths, offsets)
    return np.asarray(values, dtype=np.int32).reshape(indexes.shape)
