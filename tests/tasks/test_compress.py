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
from pixelforge.tasks.common.card import fmt  # noqa: E402
from tests.card_checks import card_and_metrics, check_common_sections, check_package_card, row  # noqa: E402
from tests.output_checks import check_common_keys, predict_json  # noqa: E402

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
def trained(photos, tmp_path_factory) -> dict[str, Path]:
    """Tiny models trained a little further (a few seconds): refinement needs a decoder that has learnt something."""
    root = tmp_path_factory.mktemp("compress-trained")
    return {model: pixelforge.train(str(photos), task="compress", model=model, channels_n=8, channels_m=12, lr=5e-3,
                                    img_size=64, epochs=3, batch_size=4, crops_per_image=8, val_fraction=0.25,
                                    out=str(root / model), quiet=True).run_dir
            for model in ("factorized", "hyperprior")}


@pytest.fixture(scope="module")
def packages(runs, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compress-packages")
    return {"hyperprior": pixelforge.export(runs["hyperprior"], root / "hyperprior")}


def test_export_refuses_symbols_that_differ_with_one_line_naming_the_export(runs, tmp_path, monkeypatch):
    # The runtime's symbol-CRC error escaped the parity check as "error: file: decoded symbols differ ...", which
    # did not say that the export was refused, nor why.
    from pixelforge.deploy.runtime.compress import CompressionRuntime

    def differs(self, data, name="file"):
        raise PfcError(f"{name}: decoded symbols differ from the encoder's")

    monkeypatch.setattr(CompressionRuntime, "decompress", differs)
    refused = r"^export refused: \d+ of \d+ parity images decode to other symbols"
    with pytest.raises(pixelforge.PixelforgeError, match=refused):
        pixelforge.export(runs["hyperprior"], tmp_path / "package")
    assert not (tmp_path / "package").exists()


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


@pytest.mark.parametrize("workers, expected", [(None, 0), (1, 1)])
def test_workers_sets_the_loader_workers_of_the_crops(photos, workers, expected):
    """`--workers N` was ignored: the random crops were always cut in the training process."""
    from types import SimpleNamespace

    import torch

    from pixelforge.engine.progress import EpochProgress
    from pixelforge.tasks.compress.task import build_setup, prepare_data
    from pixelforge.tasks.config import build_config

    cfg = build_config(task="compress", data=str(photos), model="factorized", channels_n=8, channels_m=12,
                       img_size=64, val_fraction=0.25, workers=workers)
    setup = build_setup(cfg, prepare_data(cfg)[0], [], SimpleNamespace(device=torch.device("cpu")),
                        EpochProgress(quiet=True))
    assert setup.workers == expected


def test_lambda_is_a_train_option_of_the_cli():
    from pixelforge.cli_options import train_options, train_parameters

    flags = [p.default.param_decls for p in train_parameters({}) if p.name == "lambda_"]
    assert flags == [("--lambda",)]
    assert train_options({"lambda_": 0.02}) == {"lambda_": 0.02}


class FirstWeights:
    """A hook keeping the model's weights as training starts."""

    def on_fit_start(self, ctx) -> None:
        self.state = {k: v.detach().cpu().clone() for k, v in ctx.model.state_dict().items()}  # CUDA runs too


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


def test_continuing_with_another_model_names_both_models_first(photos, tmp_path):
    """`--continue-from FACTORIZED_RUN --model hyperprior` was refused for its 32 px crops (hyperprior's needs a
    multiple of 64) before the real mistake: a continued run keeps its parent's model."""
    parent = tmp_path / "parent"  # only what is read before training: the config and the classes
    parent.mkdir()
    (parent / "config.yaml").write_text(f"task: compress\ndata: {photos}\nmodel: factorized\nimg_size: 32\n")
    (parent / "classes.json").write_text("[]")
    with pytest.raises(pixelforge.PixelforgeError) as caught:
        pixelforge.train(str(photos), continue_from=str(parent), model="hyperprior", out=str(tmp_path / "child"),
                         quiet=True)
    assert str(caught.value) == (f"{parent}: trained with model 'factorized', not 'hyperprior'; a continued run "
                                 "keeps the parent's model (leave --model out)")
    assert not (tmp_path / "child").exists()


class FirstOptimizerState:
    """A hook keeping the main optimizer's state and lr as training starts."""

    def on_fit_start(self, ctx) -> None:
        state = ctx.optimizers["main"].state_dict()
        self.moments = [s["exp_avg_sq"].cpu().clone() for s in state["state"].values()]
        self.lr = state["param_groups"][0]["lr"]


def test_continue_checkpoint_last_carries_weights_and_adam_state_into_a_decay_at_this_run_s_lr(runs, photos,
                                                                                                 tmp_path):
    # Warmup-stable-decay: a constant-lr run stays resumable; the decay is a new run that must start where it stopped,
    # with the same Adam moments (fresh ones would restart the estimates), at the decay's own lr.
    parent = runs["hyperprior"]
    first, moments = FirstWeights(), FirstOptimizerState()
    decay = pixelforge.train(str(photos), task="compress", continue_from=str(parent), continue_checkpoint="last",
                             lr=3e-4, schedule="cosine", out=str(tmp_path / "decay"), callbacks=[first, moments],
                             quiet=True).run_dir
    last = rd.load_checkpoint(parent / "checkpoints" / "last.ckpt")
    assert all(first.state[k].equal(v) for k, v in last["model"].items())
    saved = [s["exp_avg_sq"] for s in last["optimizers"]["main"]["state"].values()]
    assert len(moments.moments) == len(saved) > 0 and all(a.equal(b) for a, b in zip(moments.moments, saved))
    assert moments.lr == pytest.approx(3e-4)  # this run's lr, not the parent's 1e-3
    # A fine-tune of the decayed run is linked by its own keys: `last` is not inherited from the parent's config.
    child = pixelforge.train(str(photos), task="compress", continue_from=str(decay), lambda_=0.03, epochs=1,
                             out=str(tmp_path / "child"), quiet=True).run_dir
    assert "continue_checkpoint: best" in (child / "config.yaml").read_text()


@pytest.mark.parametrize("model", ["factorized", "hyperprior"])
def test_our_strings_are_compressai_s_own(runs, model):
    """The numpy pipeline with frozen tables writes exactly the strings CompressAI's model.compress writes."""
    import torch

    net, codec, transforms = codec_of(runs[model])
    pixels = photo("coffee", (128, 192))
    pfc = parse_pfc(compress_pixels(pixels, codec, transforms))
    # Its tables as freeze_tables made them: load_trained only runs update() for a run's first codec.npz, which an
    # earlier test may already have written.
    net.update(force=True)
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
for pfc, out in zip(sys.argv[2::2], sys.argv[3::2]):
    np.save(out, decode(Path(pfc).read_bytes(), pfc))
print("torch" in sys.modules)
"""


def decode_in_fresh_process(source: Path, *pfcs: Path) -> tuple[list[np.ndarray], bool]:
    """Each file decoded by a new interpreter (one for all): the arrays, and whether it imported torch."""
    env = {"PYTHONPATH": str(Path(pixelforge.__file__).parents[1]), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    outs = [pfc.with_name(f"{pfc.stem}-{source.name}.npy") for pfc in pfcs]
    pairs = [str(p) for pair in zip(pfcs, outs) for p in pair]
    done = subprocess.run([sys.executable, "-c", DECODE, str(source), *pairs], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return [np.load(out) for out in outs], done.stdout.strip() == "True"


@pytest.mark.slow  # two fresh interpreters and an ONNX export
def test_a_file_decodes_bit_identically_in_a_fresh_process_and_in_the_torch_free_package(runs, packages, tmp_path):
    """Also a file whose latents were refined (SGA): only the encoder changed, so the same holds for it."""
    from pixelforge.tasks.compress.refine import LatentRefiner

    run = runs["hyperprior"]
    net, codec, transforms = codec_of(run)
    pixels = photo("rocket", (150, 210))
    plain, refined = tmp_path / "rocket.pfc", tmp_path / "refined.pfc"
    plain.write_bytes(compress_pixels(pixels, codec, transforms))
    refined.write_bytes(compress_pixels(pixels, codec, transforms, refine=LatentRefiner(net, 0.01, steps=5)))
    here = [decompress_bytes(f.read_bytes(), codec, transforms) for f in (plain, refined)]
    there, _ = decode_in_fresh_process(run, plain, refined)
    assert here[0].shape == pixels.shape and all(np.array_equal(a, b) for a, b in zip(here, there))

    package = packages["hyperprior"]
    assert json.loads((package / "parity.json").read_text())["passed"]
    packaged, torch_loaded = decode_in_fresh_process(package, plain, refined)
    assert not torch_loaded  # ONNX transforms + CompressAI's rANS extension loaded on its own
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(packaged, here))
    again, _ = decode_in_fresh_process(package, plain)
    assert np.array_equal(packaged[0], again[0])


def rd_loss_of_file(pixels: np.ndarray, data: bytes, codec, transforms, lmbda: float) -> float:
    """λ·255²·MSE + bpp of a real file: its size in bits and its decoded 8-bit pixels."""
    decoded = decompress_bytes(data, codec, transforms)
    mse = np.mean((pixels.astype(np.float64) - decoded.astype(np.float64)) ** 2) / 255 ** 2
    return lmbda * 255 ** 2 * mse + 8 * len(data) / pixels[..., 0].size


@pytest.mark.parametrize("model", ["factorized", "hyperprior"])
def test_latent_refinement_lowers_the_real_file_s_rate_distortion_loss(trained, model):
    """SGA refinement changes only the coded latents: the unchanged decoder reads the file, and its λ·D + R (from
    the file's size and decoded pixels) is lower than the encoder's file's; the same seed writes the same bytes."""
    from pixelforge.tasks.compress.refine import LatentRefiner

    net, codec, transforms = codec_of(trained[model])
    pixels = photo("coffee", (72, 100))  # padded to the model's multiple: the loss counts the image's own pixels
    plain = compress_pixels(pixels, codec, transforms)
    refiner = LatentRefiner(net, 0.01, steps=30, lr=3e-2)
    refined = compress_pixels(pixels, codec, transforms, refine=refiner)
    assert refined != plain and parse_pfc(refined).kind == model
    assert rd_loss_of_file(pixels, refined, codec, transforms, 0.01) < rd_loss_of_file(pixels, plain, codec,
                                                                                        transforms, 0.01)
    assert refiner.records[-1]["loss"] < refiner.records[-1]["loss_start"]
    assert compress_pixels(pixels, codec, transforms, refine=LatentRefiner(net, 0.01, steps=30, lr=3e-2)) == refined
    assert all(p.requires_grad for p in net.parameters())  # the weights were frozen only during the search


def test_compress_cli_refines_from_a_run_folder_and_a_package_refuses_it(runs, tmp_path):
    from typer.testing import CliRunner

    from pixelforge.cli import app

    run = runs["hyperprior"]
    image = tmp_path / "rocket.png"
    Image.fromarray(photo("rocket", (80, 112))).save(image)
    done = CliRunner().invoke(app, ["compress", str(run), str(image), "--out", str(tmp_path / "r.pfc"),
                                    "--refine", "5"])
    assert done.exit_code == 0 and "5 refinement steps" in done.output, done.output
    net, codec, transforms = codec_of(run)
    assert decompress_bytes((tmp_path / "r.pfc").read_bytes(), codec, transforms).shape == (80, 112, 3)
    (tmp_path / "package").mkdir()
    (tmp_path / "package" / "preprocess.json").write_text("{}")  # what marks a package folder
    done = CliRunner().invoke(app, ["compress", str(tmp_path / "package"), str(image), "--out",
                                    str(tmp_path / "p.pfc"), "--refine", "5"])
    assert "--refine needs torch autograd and the run folder" in str(done.exception)
    assert not (tmp_path / "p.pfc").exists()
    done = CliRunner().invoke(app, ["compress", str(run), str(image), "--out", str(tmp_path / "q.pfc"),
                                    "--refine-lr", "0.1"])
    assert "give --refine N steps with it" in str(done.exception) and not (tmp_path / "q.pfc").exists()


def test_pixelforge_compress_and_decompress_are_the_commands(runs, packages, tmp_path, cli):
    """`pixelforge.compress`/`decompress` (the commands had no Python function) write what the commands write and
    return what they print; a file one writes, the other decodes, from a run or a package."""
    image = tmp_path / "rocket.png"
    Image.fromarray(photo("rocket", (48, 64))).save(image)
    done = pixelforge.compress(runs["hyperprior"], image, tmp_path / "api.pfc")
    printed = cli("compress", str(runs["hyperprior"]), str(image), "--out", str(tmp_path / "cli.pfc"))
    assert printed.returncode == 0, printed.stderr
    assert (tmp_path / "api.pfc").read_bytes() == (tmp_path / "cli.pfc").read_bytes()
    assert done["bytes"] == (tmp_path / "api.pfc").stat().st_size and f"{done['bytes']} bytes" in printed.stdout
    assert (done["width"], done["height"]) == (64, 48) and done["bpp"] == 8 * done["bytes"] / (64 * 48)
    decoded = pixelforge.decompress(packages["hyperprior"], tmp_path / "api.pfc", tmp_path / "api.png")
    assert decoded == {"out": str(tmp_path / "api.png"), "width": 64, "height": 48}
    assert cli("decompress", str(runs["hyperprior"]), str(tmp_path / "cli.pfc"), "--out",
               str(tmp_path / "cli.png")).stdout.strip() == f"{tmp_path / 'cli.png'}: 64x48"
    assert np.abs(np.asarray(Image.open(tmp_path / "api.png"), np.int16)
                  - np.asarray(Image.open(tmp_path / "cli.png"), np.int16)).max() <= 1  # ONNX vs PyTorch rounding
    with pytest.raises(pixelforge.PixelforgeError, match="already exists"):
        pixelforge.compress(runs["hyperprior"], image, tmp_path / "api.pfc")


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


def test_decompress_to_another_image_format_s_name_is_refused_before_decoding(tmp_path):
    from typer.testing import CliRunner

    from pixelforge.cli import app

    for name in ("out.jpg", "out.TIF", "out.webp"):  # PNG bytes were written under these names
        done = CliRunner().invoke(app, ["decompress", str(tmp_path / "run"), str(tmp_path / "x.pfc"), "--out",
                                        str(tmp_path / name)])
        assert "decompress writes a PNG (lossless); name the output .png" in str(done.exception)
        assert not (tmp_path / name).exists()


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
    """With refinement: every run of the curve refined, and the same runs unrefined beside them."""
    result = pixelforge.evaluate(runs["factorized"], data=str(photos), out=tmp_path / "eval",
                                 compare=runs["hyperprior"], refine=2, include_train=True)  # all 4 photos
    m = result.metrics
    keys = {"bpp", "psnr", "ms_ssim", "jpeg_psnr_at_bpp", "webp_psnr_at_bpp", "bd_rate_vs_jpeg", "encode_cpu_s"}
    assert keys <= set(m) and keys <= set(m["unrefined"])
    assert m["num_images"] == 4 and len(m["curve"]) == 2  # this run and the compared one, on the same images
    assert [s["refine_steps"] for s in m["curve"]] == [2, 2] and m["unrefined"]["curve"][0]["refine_steps"] == 0
    assert m["bpp"] > 0 and 5 < m["psnr"] < 60 and m["jpeg_psnr_at_bpp"] is not None
    assert (tmp_path / "eval" / "rd_curve.png").stat().st_size > 10_000
    # what every task's `evaluate --json` has (docs/deployment.md): the task and the split scored (a plain folder)
    assert result.to_json()["task"] == "compress" and m["split"] == "all"
    json.dumps(result.to_json())


def test_a_broken_photo_is_skipped_in_training_and_evaluation_and_named(photos, runs, tmp_path):
    """Training decoded lazily and stopped mid-epoch at a truncated JPEG; evaluate stopped at it too."""
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    (folder / "cut.jpg").write_bytes((folder / "coffee.png").read_bytes()[:300])
    run = train(folder, tmp_path / "run", "factorized")
    assert [Path(line.split(":")[0]).name for line in rd.read_json(run / "summary.json")["unreadable_images"]] == ["cut.jpg"]
    (tmp_path / "few").mkdir()
    shutil.copy(folder / "coffee.png", tmp_path / "few")
    shutil.copy(folder / "cut.jpg", tmp_path / "few")
    result = pixelforge.evaluate(runs["factorized"], data=str(tmp_path / "few"), out=tmp_path / "eval")
    assert result.metrics["num_images"] == 1 and "cut.jpg" in result.unreadable[0]


def test_summary_counts_training_images_not_their_crops(trained):
    summary = rd.read_json(trained["factorized"] / "summary.json")  # 4 photos, a quarter held out, 8 crops each
    assert (summary["train_images"], summary["val_images"]) == (3, 1)


def test_compare_with_a_run_of_another_task_is_refused_before_any_output(runs, photos, tmp_path):
    """It was dropped silently: the "curve" held this run alone and nothing said why."""
    from pixelforge.errors import PixelforgeError

    other = tmp_path / "denoise-run"
    other.mkdir()
    (other / "config.yaml").write_text("task: denoise\n")
    (other / "classes.json").write_text("[]")
    with pytest.raises(PixelforgeError, match=r"denoise-run: holds denoise run\(s\), no compress run") as caught:
        pixelforge.evaluate(runs["factorized"], data=str(photos), out=tmp_path / "eval", compare=other)
    assert "\n" not in str(caught.value) and not (tmp_path / "eval").exists()


def test_evaluate_on_a_missing_data_path_names_it_in_one_error(runs, tmp_path, caplog):
    from pixelforge.errors import PixelforgeError

    with pytest.raises(PixelforgeError, match=r"nope: no such file or folder"):
        pixelforge.evaluate(runs["factorized"], data=str(tmp_path / "nope"), out=tmp_path / "eval")
    assert "skipping unreadable" not in caplog.text and not (tmp_path / "eval").exists()


def test_package_predict_gives_a_second_photo_of_the_same_name_its_own_files(packages, tmp_path):
    from pixelforge.deploy.runtime import predict_package

    for folder in ("ants", "bees"):  # class folders that each hold a 1.png: the second overwrote the first
        (tmp_path / "photos" / folder).mkdir(parents=True)
        Image.fromarray(photo("coffee", (32, 48))).save(tmp_path / "photos" / folder / "1.png")
    results = predict_package(packages["hyperprior"], [str(tmp_path / "photos")], tmp_path / "out")
    assert [Path(r["file"]).name for r in results] == ["1.pfc", "1-2.pfc"]
    assert (tmp_path / "out" / "1-2.png").is_file()


def test_package_predict_json_names_the_decoded_png_it_writes(packages, tmp_path, cli):
    """`predict PACKAGE --json` lists the decoded PNG beside the .pfc (before: written but named nowhere, while
    denoise, style and segment name every file they write), and its PSNR is the PNG's."""
    from pixelforge.deploy.runtime import predict_package
    from pixelforge.metrics.image_quality import psnr as image_psnr

    Image.fromarray(photo("coffee", (32, 48))).save(tmp_path / "c.png")
    [result] = predict_package(packages["hyperprior"], [str(tmp_path / "c.png")], tmp_path / "out")
    decoded = Path(result["decoded"])
    assert decoded == tmp_path / "out" / "c.png" and decoded.is_file()
    original = np.asarray(Image.open(tmp_path / "c.png").convert("RGB"))
    assert image_psnr(original, np.asarray(Image.open(decoded))) == pytest.approx(result["psnr"], abs=1e-3)
    # the keys every task's rows have: `output` is the .pfc, the task's own `file` (docs/deployment.md)
    check_common_keys(predict_json(cli, packages["hyperprior"], [tmp_path / "c.png"], tmp_path / "keys"), "compress",
                      "file")


def test_bd_rate_follows_bjontegaard_on_known_curves():
    from pixelforge.metrics.bd_rate import bd_rate

    rates, psnrs = [0.1, 0.2, 0.4, 0.8], [26.0, 29.0, 32.0, 35.0]
    assert bd_rate(rates, psnrs, rates, psnrs) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(rates, psnrs, [r * 1.25 for r in rates], psnrs) == pytest.approx(25.0)
    assert bd_rate(rates, psnrs, [0.2 * 2 ** 0.5], [30.5]) == pytest.approx(0.0, abs=1e-6)  # a point on the curve
    assert bd_rate(rates, psnrs, [0.1], [40.0]) is None  # no shared PSNR range


def test_a_bd_rate_of_n_a_is_printed_with_its_reason():
    """evaluate printed "BD-rate vs JPEG n/a%": no reason, and a stray percent sign."""
    from pixelforge.tasks.compress.evaluate import SCORE_KEYS, against_classical
    from pixelforge.tasks.registry import get_task

    ours = {**dict.fromkeys(SCORE_KEYS, 0.01), "bpp": 0.5, "psnr": 7.0, "rows": []}  # a model that learnt little
    curve = [{"run": "r", "model": "factorized", "lambda": 0.01, "refine_steps": 0, **ours}]
    means = {"jpeg": [{"bpp": 0.2, "psnr": 25.0}, {"bpp": 1.0, "psnr": 39.0}], "webp": [{"bpp": 0.2, "psnr": 27.0}]}
    metrics = {**against_classical(ours, curve, {}, means), "model": "factorized", "lambda": 0.01, "num_images": 2}
    assert metrics["bd_rate_vs_jpeg"] is None and metrics["bd_rate_vs_jpeg_na_reason"].startswith("the curves do not")
    line = get_task("compress").format_metrics(metrics)
    assert ("BD-rate vs JPEG n/a (the curves do not overlap: this run reaches 7.00 dB PSNR, JPEG's curve "
            "25.00-39.00 dB)") in line
    assert "vs WebP n/a (too few rate points: WebP's curve has 1 distinct PSNR value(s))" in line and "n/a%" not in line
    metrics.update(bd_rate_vs_jpeg=-12.345, bd_rate_vs_jpeg_na_reason=None)
    assert "BD-rate vs JPEG -12.3%, vs WebP n/a" in get_task("compress").format_metrics(metrics)
    assert "MS-SSIM 0.0100 |" in line
    metrics["ms_ssim"] = None  # images too small for MS-SSIM's five scales
    assert "MS-SSIM n/a (needs images of at least 176 px a side)" in get_task("compress").format_metrics(metrics)


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


@pytest.fixture(scope="module")
def split_photos(tmp_path_factory) -> Path:
    """train/ (3 photos, one in a class folder), validation/ (an alias of val/, 1) and test/ (2)."""
    folder = tmp_path_factory.mktemp("split-photos") / "photos"
    layout = {"train": ["astronaut", "coffee"], "train/cats": ["chelsea"], "validation": ["rocket"],
              "test": ["immunohistochemistry", "hubble_deep_field"]}
    for sub, names in layout.items():
        (folder / sub).mkdir(parents=True)
        for name in names:
            Image.fromarray(photo(name, (96, 128))).save(folder / sub / f"{name}.png")
    return folder


def test_split_folders_train_on_train_validate_on_val_and_never_train_on_test(split_photos, tmp_path, monkeypatch):
    """It drew its own seeded split over every image of the folder: test/ photos were trained on."""
    from pixelforge.tasks.compress import task as compress_task
    from pixelforge.tasks.compress.data import split_images

    read = {}

    class Recording(compress_task.CropDataset):
        def __init__(self, files, size, crops_per_image, train, progress=None):
            read["train" if train else "val"] = list(files)
            super().__init__(files, size, crops_per_image, train, progress)

    monkeypatch.setattr(compress_task, "CropDataset", Recording)
    run = train(split_photos, tmp_path / "run", "factorized")
    assert sorted(p.relative_to(split_photos).as_posix() for p in read["train"]) == [
        "train/astronaut.png", "train/cats/chelsea.png", "train/coffee.png"]
    assert [p.relative_to(split_photos).as_posix() for p in read["val"]] == ["validation/rocket.png"]
    summary = rd.read_json(run / "summary.json")
    assert (summary["train_images"], summary["val_images"]) == (3, 1)
    splits = split_images(str(split_photos), 0.25, 0)  # what evaluate and export read again
    assert splits["train"] == sorted(read["train"]) and splits["val"] == read["val"]
    assert [p.name for p in splits["test"]] == ["hubble_deep_field.png", "immunohistochemistry.png"]


def test_given_train_without_val_carves_val_from_train_and_keeps_test_out(split_photos, tmp_path):
    import shutil

    from pixelforge.tasks.compress.data import split_images

    folder = tmp_path / "photos"
    shutil.copytree(split_photos, folder)
    shutil.rmtree(folder / "validation")
    splits = split_images(str(folder), 0.25, 0)
    assert len(splits["val"]) == 1 and len(splits["train"]) == 2 and len(splits["test"]) == 2
    assert all(p.relative_to(folder).parts[0] == "train" for p in splits["train"] + splits["val"])


def old_seeded_split(folder: Path, val_fraction: float, seed: int) -> dict:
    """The split every compression run made before split folders were read (the documented recipes rely on it)."""
    import random

    from pixelforge.data.images import list_images

    order = list(list_images(folder))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * val_fraction))
    return {"train": sorted(order[n_val:]), "val": sorted(order[:n_val]), "test": []}


@pytest.mark.parametrize("val_fraction, seed", [(0.25, 0), (0.5, 3), (0.1, 7)])
def test_a_folder_without_split_folders_splits_exactly_as_before(photos, split_photos, val_fraction, seed):
    from pixelforge.tasks.compress.data import split_images

    assert split_images(str(photos), val_fraction, seed) == old_seeded_split(photos, val_fraction, seed)
    test = split_photos / "test"  # test/ read as the --data folder itself: an ordinary flat folder
    assert split_images(str(test), val_fraction, seed) == old_seeded_split(test, val_fraction, seed)


def test_evaluate_on_data_leaves_out_the_run_s_training_images_unless_asked(runs, photos, tmp_path, caplog):
    """`evaluate RUN --data ITS_OWN_FOLDER` scored the photos it trained on, silently."""
    import shutil

    from pixelforge.errors import PixelforgeError
    from pixelforge.tasks.compress.data import split_images
    from pixelforge.tasks.registry import get_task

    trained_on = split_images(str(photos), 0.25, 0)["train"]
    with caplog.at_level("WARNING", logger="pixelforge"):
        held_out = pixelforge.evaluate(runs["factorized"], data=str(photos), out=tmp_path / "held-out",
                                       compare=runs["hyperprior"]).metrics
    assert held_out["num_images"] == 1 and held_out["excluded_training_images"] == len(trained_on) == 3
    assert "3 of 4 images are the run's training images" in caplog.text
    assert "(3 training images left out)" in get_task("compress").format_metrics(held_out)
    assert len(held_out["curve"]) == 2  # the compared run is scored on the same held-out image
    everything = pixelforge.evaluate(runs["factorized"], data=str(photos), include_train=True,
                                     out=tmp_path / "all").metrics
    assert everything["num_images"] == 4 and everything["excluded_training_images"] is None
    (tmp_path / "copies").mkdir()  # the training photos alone, under other names: nothing held out to score
    for i, path in enumerate(trained_on):
        shutil.copy(path, tmp_path / "copies" / f"copy{i}.png")
    with pytest.raises(PixelforgeError, match=r"all 3 images in split 'all' are the run's own training images.*"
                                              r"--include-train") as refused:
        pixelforge.evaluate(runs["factorized"], data=str(tmp_path / "copies"), out=tmp_path / "refused")
    assert "\n" not in str(refused.value) and not (tmp_path / "refused").exists()


def test_evaluate_of_a_split_folder_run_scores_test_by_default(split_photos, tmp_path):
    run = train(split_photos, tmp_path / "run", "factorized")
    own = pixelforge.evaluate(run, out=tmp_path / "own")
    assert own.metrics["num_images"] == 2 and own.metrics["excluded_training_images"] == 0
    on_data = pixelforge.evaluate(run, data=str(split_photos), out=tmp_path / "data").metrics
    assert on_data["num_images"] == 2 and on_data["excluded_training_images"] == 0  # its test/ split
    with pytest.raises(pixelforge.PixelforgeError, match=r"all 3 images in split 'train' are the run's own"):
        pixelforge.evaluate(run, data=str(split_photos), split="train", out=tmp_path / "refused")
    with pytest.raises(pixelforge.PixelforgeError, match=r"no train/, val/ or test/ folders, so no split 'val'"):
        pixelforge.evaluate(run, data=str(split_photos / "test"), split="val", out=tmp_path / "flat")


def test_training_writes_a_report_with_rate_and_psnr_and_its_curves(runs):
    run = runs["hyperprior"]
    page = (run / "report.html").read_text()
    assert "bpp" in page and "dB" in page and "pixelforge evaluate" in page
    assert "src='curves.png'" in page and (run / "curves.png").stat().st_size > 5000


def test_the_rd_figure_says_why_its_ms_ssim_panel_is_empty(tmp_path, monkeypatch):
    from pixelforge.tasks.compress import figures

    drawn = []
    monkeypatch.setattr(figures.plt, "close", drawn.append)
    curve = [{"model": "hyperprior", "lambda": 0.01, "bpp": 0.05, "psnr": 20.0, "ms_ssim": None}]
    classical = {"jpeg": [{"bpp": 0.3, "psnr": 25.0, "ms_ssim": None}, {"bpp": 0.6, "psnr": 29.0, "ms_ssim": None}]}
    figures.plot_rd_curve(curve, classical, tmp_path / "rd.png")
    psnr_axes, ms_ssim_axes = drawn[0].axes
    assert not psnr_axes.texts or all("n/a" not in t.get_text() for t in psnr_axes.texts)
    assert any("at least 176 px" in t.get_text() for t in ms_ssim_axes.texts)


def test_the_card_gives_the_training_estimate_then_evaluate_s_bpp_psnr_and_bd_rates(runs, packages):
    run = runs["hyperprior"]
    check_package_card(packages["hyperprior"], run)
    row_of = rd.read_metrics(run / "metrics.csv")[-1]  # one epoch: the best
    if not list(run.glob("eval-*/metrics.json")):
        assert f"estimated {fmt(row_of['val_bpp'])} bpp at PSNR {fmt(row_of['val_psnr'], 2)} dB" in \
            (run / "model_card.md").read_text()
    pixelforge.evaluate(run)  # rewrites the card with the real files' figures
    card, m = card_and_metrics(run)
    check_common_sections(run, card)
    assert row("bits per pixel (real files)", fmt(m["bpp"])) in card and row("PSNR (dB)", fmt(m["psnr"], 2)) in card
    for codec, name in (("jpeg", "JPEG"), ("webp", "WebP")):
        value = m[f"bd_rate_vs_{codec}"]
        assert (f"{value:+.1f}%" if value is not None else m[f"bd_rate_vs_{codec}_na_reason"]) in card
        assert row(f"{name} PSNR at the same bpp (dB)", fmt(m[f"{codec}_psnr_at_bpp"], 2)) in card
