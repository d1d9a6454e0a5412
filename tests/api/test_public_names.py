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
    # `pixelforge generate|zeroshot|fewshot|data drift|stylize|compress|decompress|tune|nas|explain` run these;
    # docs/*.md's Python API sections call them.
    assert {"generate", "zeroshot", "fewshot", "drift", "stylize", "compress", "decompress", "tune_study", "nas",
            "explain_images"} <= set(pixelforge.__all__)


def test_public_functions_keep_working_after_their_package_of_the_same_stem_is_imported():
    """`pixelforge.tune` and `pixelforge.explain` are subpackages: importing one sets that attribute on the package,
    so a lazy function of that name would be replaced by a module. The public names avoid them."""
    import importlib

    importlib.import_module("pixelforge.tune.api")
    importlib.import_module("pixelforge.explain.commands")
    for name in pixelforge.__all__:
        assert not inspect.ismodule(getattr(pixelforge, name)), f"pixelforge.{name} is a module"
