"""Learned compression (`--task compress`): training both CompressAI models through the engine, real .pfc files,
deterministic decoding in a fresh process, the file's bpp against the entropy model's estimate, corrupted files,
the torch-free package and the evaluation's keys. Tiny models (8/12 channels) on 64-px crops of real photos."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("compressai", exc_type=ImportError)

import pixelforge  # noqa: E402
from pixelforge.deploy.runtime.learned_codec import compress_pixels, decompress_bytes  # noqa: E402
from pixelforge.deploy.runtime.pfc import PfcError, parse_pfc  # noqa: E402
from pixelforge.runs import folder as rd  # noqa: E402

pytestmark = pytest.mark.xdist_group("compress")  # the module's runs are shared fixtures: one worker


def photo(name: str = "astronaut", size: tuple = (160, 200)) -> np.ndarray:
    from skimage import data

    return np.asarray(Image.fromarray(getattr(data, name)()).resize(size[::-1]))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos") / "photos"
    (folder / "cats").mkdir(parents=True)  # a class folder and loose files: both are read
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket"]):
        target = folder / "cats" if name == "chelsea" else folder
        Image.fromarray(photo(name, (96, 128))).save(target / f"{name}.png")
    return folder


def train(photos: Path, out: Path, model: str, lam: float = 0.01) -> Path:
    result = pixelforge.train(str(photos), task="compress", model=model, lambda_=lam, channels_n=8, channels_m=12,
                              img_size=64, epochs=1, batch_size=2, crops_per_image=1, val_fraction=0.25,
                              out=str(out), quiet=True)
    return result.run_dir


@pytest.fixture(scope="module")
def runs(photos, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compress-runs")
    return {model: train(photos, root / model, model) for model in ("factorized", "hyperprior")}


@pytest.fixture(scope="module")
def packages(runs, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compress-packages")
    return {"hyperprior": pixelforge.export(runs["hyperprior"], root / "hyperprior")}


def codec_of(run: Path):
    from pixelforge.tasks.compress.tables import load_trained, torch_transforms

    _, cfg, model, codec = load_trained(run)
    return model, codec, torch_transforms(model)


@pytest.mark.parametrize("model", ["factorized", "hyperprior"])
def test_each_model_trains_through_the_engine_with_the_aux_loss_on_its_own_optimizer(runs, model):
    rows = rd.read_metrics(runs[model] / "metrics.csv")
    assert {"train_bpp", "train_mse", "train_aux", "val_bpp", "val_psnr"} <= set(rows[0])
    state = rd.load_checkpoint(runs[model] / "checkpoints" / "last.ckpt")
    assert set(state["optimizers"]) == {"main", "aux"}  # the engine's named optimizers, both checkpointed
    assert len(state["optimizers"]["aux"]["param_groups"][0]["params"]) == 1  # aux: the bottleneck's quantiles only
    config = (runs[model] / "config.yaml").read_text()
    assert "lambda_: 0.01" in config and f"model: {model}" in config


def test_lambda_is_a_train_option_of_the_cli():
    from pixelforge.cli_options import train_options, train_parameters

    flags = [p.default.param_decls for p in train_parameters({}) if p.name == "lambda_"]
    assert flags == [("--lambda",)]
    assert train_options({"lambda_": 0.02}) == {"lambda_": 0.02}


class FirstWeights:
    """A hook keeping the model's weights as training starts."""

    def on_fit_start(self, ctx) -> None:
        self.state = {k: v.clone() for k, v in ctx.model.state_dict().items()}


def test_continue_from_starts_a_new_lambda_from_the_parent_s_best_weights(runs, photos, tmp_path):
    parent = runs["hyperprior"]
    first = FirstWeights()
    child = pixelforge.train(str(photos), task="compress", continue_from=str(parent), lambda_=0.03, schedule="cosine",
                             out=str(tmp_path / "child"), callbacks=[first], quiet=True).run_dir
    best = rd.load_checkpoint(parent / "checkpoints" / "best.ckpt")["model"]
    for key in ("g_a.0.weight", "g_s.6.weight", "h_s.4.bias", "entropy_bottleneck.quantiles"):
        assert first.state[key].equal(best[key]), key
    config = (child / "config.yaml").read_text()
    assert "lambda_: 0.03" in config and "channels_n: 8" in config  # λ given, the architecture the parent's
    main = rd.load_checkpoint(child / "checkpoints" / "last.ckpt")["optimizers"]["main"]
    assert main["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-9)  # --schedule cosine reached its end
    with pytest.raises(pixelforge.PixelforgeError, match="do not fit this model.*channels_m 12 there, 16 here"):
        pixelforge.train(str(photos), task="compress", continue_from=str(parent), channels_m=16,
                         out=str(tmp_path / "misfit"), quiet=True)
    assert not (tmp_path / "misfit").exists()  # refused before a run folder is made


@pytest.mark.parametrize("model", ["factorized", "hyperprior"])
def test_our_strings_are_compressai_s_own(runs, model):
    """The numpy pipeline with frozen tables writes exactly the strings CompressAI's model.compress writes."""
    import torch

    net, codec, transforms = codec_of(runs[model])
    pixels = photo("coffee", (128, 192))
    pfc = parse_pfc(compress_pixels(pixels, codec, transforms))
    with torch.no_grad():
        theirs = net.compress(torch.from_numpy(pixels.transpose(2, 0, 1).astype(np.float32) / 255)[None])
    assert list(pfc.strings) == [s[0] for s in theirs["strings"]]


def test_file_bpp_matches_the_entropy_model_estimate(runs):
    """The factorized model: its estimate is exact up to the coder. (The hyperprior's file also pays for σ rounded
    up to its scale table; evaluate reports both numbers for trained runs, docs/compression.md.)"""
    from pixelforge.tasks.compress.evaluate import estimated_bpp

    net, codec, transforms = codec_of(runs["factorized"])
    pixels = photo("astronaut", (256, 256))
    data = compress_pixels(pixels, codec, transforms)
    strings_bpp = 8 * sum(len(s) for s in parse_pfc(data).strings) / pixels[..., 0].size
    estimate = estimated_bpp(net, pixels, "factorized")
    assert estimate > 0.1  # enough bits that a coder's constant overhead cannot hide a mismatch
    assert strings_bpp == pytest.approx(estimate, rel=0.03)
    assert 8 * len(data) / pixels[..., 0].size == pytest.approx(estimate, rel=0.05)  # the header is small


DECODE = """
import sys, numpy as np
from pixelforge.commands.compress import load_codec
from pathlib import Path
_, decode = load_codec(Path(sys.argv[1]))
np.save(sys.argv[3], decode(Path(sys.argv[2]).read_bytes(), sys.argv[2]))
print("torch" in sys.modules)
"""


def decode_in_fresh_process(source: Path, pfc: Path, out: Path) -> tuple[np.ndarray, bool]:
    env = {"PYTHONPATH": str(Path(pixelforge.__file__).parents[1]), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", DECODE, str(source), str(pfc), str(out)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return np.load(out), done.stdout.strip() == "True"


@pytest.mark.slow  # two fresh interpreters and an ONNX export
def test_a_file_decodes_bit_identically_in_a_fresh_process_and_in_the_torch_free_package(runs, packages, tmp_path):
    run = runs["hyperprior"]
    net, codec, transforms = codec_of(run)
    pixels = photo("rocket", (150, 210))
    pfc = tmp_path / "rocket.pfc"
    pfc.write_bytes(compress_pixels(pixels, codec, transforms))
    here = decompress_bytes(pfc.read_bytes(), codec, transforms)
    there, _ = decode_in_fresh_process(run, pfc, tmp_path / "fresh.npy")
    assert here.shape == pixels.shape and np.array_equal(here, there)

    package = packages["hyperprior"]
    assert json.loads((package / "parity.json").read_text())["passed"]
    packaged, torch_loaded = decode_in_fresh_process(package, pfc, tmp_path / "package.npy")
    assert not torch_loaded  # ONNX transforms + CompressAI's rANS extension loaded on its own
    assert np.abs(packaged.astype(int) - here.astype(int)).max() <= 1
    again, _ = decode_in_fresh_process(package, pfc, tmp_path / "package2.npy")
    assert np.array_equal(packaged, again)


def test_truncated_corrupted_and_foreign_files_give_one_line_errors(runs):
    net, codec, transforms = codec_of(runs["factorized"])
    data = compress_pixels(photo(), codec, transforms)
    flipped = bytearray(data)
    flipped[-3] ^= 0x10
    cases = {"truncated": data[:-5], "checksum": bytes(flipped), "magic": b"GIF89a" + data[6:],
             "header": data[:10]}
    for expected, broken in cases.items():
        with pytest.raises(PfcError, match=expected) as caught:
            decompress_bytes(broken, codec, transforms, "x.pfc")
        assert "\n" not in str(caught.value) and str(caught.value).startswith("x.pfc: ")
    other = codec_of(runs["hyperprior"])
    with pytest.raises(PfcError, match="written by another model"):
        decompress_bytes(data, other[1], other[2], "x.pfc")


def test_a_corrupted_string_with_a_repaired_checksum_is_caught_by_the_symbol_crc(runs):
    """A flipped bit inside a string decodes to other symbols: the symbol CRC refuses it (no garbage image)."""
    net, codec, transforms = codec_of(runs["factorized"])
    data = bytearray(compress_pixels(photo(), codec, transforms))
    pfc = parse_pfc(bytes(data))
    data[-len(pfc.strings[0]) // 2] ^= 0x01
    body_start = len(data) - len(pfc.strings[0])
    data[body_start - 4:body_start] = zlib.crc32(bytes(data[body_start:]), zlib.crc32(bytes(data[:body_start - 4]))
                                                 ).to_bytes(4, "little")
    with pytest.raises(PfcError, match="decoded symbols differ"):
        decompress_bytes(bytes(data), codec, transforms, "x.pfc")


@pytest.mark.slow  # JPEG and WebP sweeps with MS-SSIM at every quality
def test_evaluate_reports_real_file_bpp_and_classical_codecs_at_the_same_bpp(runs, photos, tmp_path):
    result = pixelforge.evaluate(runs["factorized"], data=str(photos), out=tmp_path / "eval",
                                 compare=runs["hyperprior"])
    m = result.metrics
    assert {"bpp", "psnr", "ms_ssim", "jpeg_psnr_at_bpp", "webp_psnr_at_bpp", "bd_rate_vs_jpeg"} <= set(m)
    assert m["num_images"] == 4 and len(m["curve"]) == 2  # this run and the compared one, on the same images
    assert m["bpp"] > 0 and 5 < m["psnr"] < 60 and m["jpeg_psnr_at_bpp"] is not None
    assert (tmp_path / "eval" / "rd_curve.png").stat().st_size > 10_000
    json.dumps(result.to_json())


def test_bd_rate_follows_bjontegaard_on_known_curves():
    from pixelforge.metrics.bd_rate import bd_rate

    rates, psnrs = [0.1, 0.2, 0.4, 0.8], [26.0, 29.0, 32.0, 35.0]
    assert bd_rate(rates, psnrs, rates, psnrs) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(rates, psnrs, [r * 1.25 for r in rates], psnrs) == pytest.approx(25.0)
    assert bd_rate(rates, psnrs, [0.2 * 2 ** 0.5], [30.5]) == pytest.approx(0.0, abs=1e-6)  # a point on the curve
    assert bd_rate(rates, psnrs, [0.1], [40.0]) is None  # no shared PSNR range


@pytest.mark.slow  # loads the package's four ONNX sessions
def test_the_server_answers_before_after_with_bpp_and_psnr(packages):
    import base64
    import io

    from fastapi.testclient import TestClient

    from pixelforge.deploy.serve.server import ServerSettings, create_app

    buffer = io.BytesIO()
    Image.fromarray(photo("chelsea", (120, 180))).save(buffer, format="PNG")
    with TestClient(create_app(ServerSettings(str(packages["hyperprior"])))) as client:
        assert client.get("/v1/model").json()["task"] == "compress"
        answer = client.post("/v1/predict", files={"file": ("c.png", buffer.getvalue(), "image/png")}).json()
    prediction = answer["predictions"][0]
    decoded = Image.open(io.BytesIO(base64.b64decode(prediction["decoded_png"])))
    assert decoded.size == (180, 120) and prediction["bpp"] == pytest.approx(8 * prediction["bytes"] / (120 * 180))
    assert 5 < prediction["psnr"] < 60
