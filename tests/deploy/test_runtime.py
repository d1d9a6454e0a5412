"""The package runtime: same predictions as the run, through ONNX Runtime, without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np


def test_predict_package_json_matches_predicting_from_the_run(cli, tiny_run, tiny_package, shapes_dir, sample_images):
    image = str(sample_images[2])
    folder = shapes_dir / "val" / "circle"
    args = [image, folder, "--json", "--top-k", "3"]
    from_run = json.loads(cli("predict", tiny_run, *args).stdout)
    result = cli("predict", tiny_package, *args)
    assert result.returncode == 0, result.stderr
    from_package = json.loads(result.stdout)
    assert [r["path"] for r in from_package] == [r["path"] for r in from_run]
    assert from_package[0]["path"] == image
    assert all(set(r) == {"path", "task", "label", "score", "top_k"} and len(r["top_k"]) == 3 for r in from_package)
    fp32 = _predict_fp32(tiny_package, [r["path"] for r in from_run])
    assert [r["label"] for r in fp32] == [r["label"] for r in from_run]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(fp32, from_run)) < 1e-4


def _predict_fp32(package, paths):
    from pixelforge.deploy.runtime import Runtime

    return Runtime(package, "fp32").predict_files(paths, top_k=3)


def test_predict_precision_picks_the_package_s_model_and_a_run_refuses_it(cli, tiny_run, tiny_package, sample_images):
    """`predict PACKAGE --precision fp32` runs the fp32 model of a package whose default is int8, as `serve` and
    `video` can (before: "No such option: --precision"); on a run it is one line pointing to export."""
    from pixelforge.deploy.runtime import Runtime

    paths = [str(p) for p in sample_images]
    for precision in ("fp32", "int8"):
        result = cli("predict", tiny_package, *paths, "--json", "--top-k", "4", "--precision", precision)
        assert result.returncode == 0, result.stderr
        expected = Runtime(tiny_package, precision).predict_files(paths, top_k=4)
        assert json.loads(result.stdout) == expected
    refused = cli("predict", tiny_run, paths[0], "--precision", "fp32")
    assert refused.returncode == 2 and "pixelforge export" in refused.stderr and "Traceback" not in refused.stderr
    wrong = cli("predict", tiny_package, paths[0], "--precision", "fp64")
    assert wrong.returncode == 2 and "fp64" in wrong.stderr and "Traceback" not in wrong.stderr


def test_package_predict_never_imports_torch(tiny_package, sample_images, tmp_path):
    code = (
        "import sys, json\n"
        "from pixelforge.cli import main\n"
        f"sys.argv = ['pixelforge', 'predict', {str(tiny_package)!r}, {str(sample_images[0])!r}, '--json']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('TORCH_LOADED', 'torch' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["label"]
    assert "TORCH_LOADED False" in result.stderr


def test_runtime_modules_import_without_torch():
    code = ("import sys\nimport pixelforge.cli, pixelforge.deploy.runtime, pixelforge.deploy.serve.server, "
            "pixelforge.deploy.video, pixelforge.deploy.commands\nassert 'torch' not in sys.modules, 'torch imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_globs_csv_and_unreadable_files(cli, tiny_package, shapes_dir, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    pattern = str(shapes_dir / "val" / "star" / "*.png")
    result = cli("predict", tiny_package, pattern, broken, "--json")
    rows = json.loads(result.stdout)
    assert len(rows) == len(list((shapes_dir / "val" / "star").glob("*.png"))) + 1
    assert rows[-1]["label"] is None and "broken.png" in rows[-1]["error"]
    assert cli("predict", tiny_package, pattern, "--csv", tmp_path / "p.csv").returncode == 0
    assert (tmp_path / "p.csv").read_text().startswith("path,label,score")
    table = cli("predict", tiny_package, pattern)
    assert table.returncode == 0 and table.stdout.count("\n") == len(rows) - 1


def test_batched_logits_equal_single_image_logits(tiny_package, sample_images):
    from pixelforge.deploy.runtime import Runtime

    runtime = Runtime(tiny_package, "fp32")
    paths = [str(p) for p in sample_images]
    batched, kept, errors = runtime.logits_for_files(paths, batch_size=4)
    single = np.concatenate([runtime.logits_for_files([p])[0] for p in paths])
    assert kept == paths and not errors
    assert np.abs(batched - single).max() < 1e-5


def test_not_a_package_is_a_clear_error(tmp_path):
    import pytest

    from pixelforge.deploy.runtime import Runtime
    from pixelforge.errors import PixelforgeError

    with pytest.raises(PixelforgeError, match="not a pixelforge package"):
        Runtime(tmp_path)



def test_a_precision_a_detection_package_lacks_points_to_its_own_not_to_an_export_it_refuses(tmp_path):
    """A detection package asked for int8 said "export with --int8", which `pixelforge export` refuses for a
    detection run: the line names the precision the package has first."""
    import pytest

    from pixelforge.deploy.runtime.registry import load_runtime
    from pixelforge.errors import PixelforgeError
    from tests.deploy.conftest import write_detection_package

    package = write_detection_package(tmp_path / "det")
    with pytest.raises(PixelforgeError, match=r"no int8 model in this package \(it has fp32\); choose --precision "
                                              r"fp32, `pixelforge export` adds int8 models to classify, segment, "
                                              r"denoise, style, gan, caption, clip packages only$"):
        load_runtime(package, "int8")


def test_a_precision_no_package_has_lists_the_packages_own(tmp_path):
    """--precision fp64 names the package's models (before: 'export with --fp64', an option that does not exist)."""
    import pytest

    from pixelforge.deploy.runtime.registry import load_runtime
    from pixelforge.errors import PixelforgeError
    from tests.deploy.conftest import write_segmentation_package

    package = write_segmentation_package(tmp_path / "seg")
    with pytest.raises(PixelforgeError, match=r"--precision 'fp64': choose fp32 \(this package's models\)"):
        load_runtime(package, "fp64")


def test_predict_names_a_multi_frame_file_once_whether_from_a_run_or_a_package(cli, tiny_run, tiny_package, tmp_path,
                                                                                sample_images):
    """An animated GIF was predicted from its first frame without a word: one `warning:` line names it, its frame
    count and that frame 1 is used, from a run and from a package, and the file is still predicted."""
    from PIL import Image

    frames = [Image.open(p).convert("RGB") for p in sample_images[:3]]
    frames[0].save(tmp_path / "spin.gif", save_all=True, append_images=frames[1:])
    for model in (tiny_run, tiny_package):
        result = cli("predict", model, tmp_path / "spin.gif", sample_images[3], "--json")
        assert result.returncode == 0, result.stderr
        assert len(json.loads(result.stdout)) == 2
        warned = [line for line in result.stderr.splitlines() if "frames" in line]
        assert warned == [f"warning: {tmp_path / 'spin.gif'}: an animated GIF with 3 frames; frame 1 is used (save "
                          "the frames as separate images to predict each)"], (model, result.stderr)
