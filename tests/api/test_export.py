"""`pixelforge.export` from Python: a misspelt option is one line, for classification as for the other tasks."""

from __future__ import annotations

import pytest

import pixelforge
from pixelforge.errors import PixelforgeError


def test_a_misspelt_classify_export_option_is_named_with_the_ones_it_takes(tiny_run, tmp_path):
    with pytest.raises(PixelforgeError, match=r"export: --int9 not available for task 'classify'; its options: .*int8"):
        pixelforge.export(tiny_run, tmp_path / "package", int9=True)  # was a TypeError from ExportOptions
    assert not (tmp_path / "package").exists()
