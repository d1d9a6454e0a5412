"""Every name `pixelforge.__all__` promises resolves (the API is imported lazily, by strings a typo would break only
when a user calls it), and each public function documents itself with an example."""

import inspect

import pytest

import pixelforge


@pytest.mark.parametrize("name", pixelforge.__all__)
def test_every_public_name_resolves_and_documents_itself(name):
    value = getattr(pixelforge, name)
    if inspect.isfunction(value):
        assert "Example" in (value.__doc__ or ""), f"pixelforge.{name} has no example in its docstring"


def test_the_functions_behind_cli_commands_are_public():
    # `pixelforge generate|zeroshot|fewshot|data drift|stylize|compress|decompress` run these; docs/*.md's Python API
    # sections call them.
    assert {"generate", "zeroshot", "fewshot", "drift", "stylize", "compress", "decompress"} <= set(pixelforge.__all__)
