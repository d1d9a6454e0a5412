"""Neural style transfer: the losses against hand computations, optimisation, a 2-step fast-network training,
checkpoints in a fresh process (old instance-norm keys too), ONNX export parity, the torch-free runtime, video
flicker, and the `stylize` command's JSON for every method."""

from __future__ import annotations

import base64
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pixelforge
from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd
from pixelforge.tasks.common.card import fmt
from pixelforge.tasks.style.lossnet import (build_loss_network, content_loss, gram_matrix, relative_mse, style_loss,
                                           total_variation)
from tests.card_checks import check_common_sections, check_package_card, row
from tests.output_checks import check_run_and_package

pytestmark = pytest.mark.xdist_group("style")  # one worker builds the tiny run once for the module
SRC = str(Path(pixelforge.__file__).resolve().parents[1])


def _photo(path: Path, seed: int, size=(48, 40)) -> Path:
    """A smooth random picture (gradients and blobs), more photo-like than noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[1], 0:size[0]] / max(size)
    channels = [np.sin(6 * xx * rng.uniform(0.5, 2) + rng.uniform(0, 6)) * np.cos(5 * yy * rng.uniform(0.5, 2))
                for _ in range(3)]
    Image.fromarray(((np.stack(channels, -1) + 1) * 127.5).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("style")
    (root / "photos").mkdir()
    photos = [_photo(root / "photos" / f"{i}.png", i) for i in range(5)]
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::8] = (230, 40, 40)
    stripes[::8, :] = (40, 40, 230)
    Image.fromarray(stripes).save(root / "style.png")
    return {"root": root, "photos": photos, "folder": root / "photos", "style": root / "style.png"}


@pytest.fixture(scope="module")
def tiny_run(images) -> Path:
    result = pixelforge.train(str(images["folder"]), task="style", style=str(images["style"]), img_size=32, epochs=1,
                              batch_size=2, width=4, residual_blocks=1, val_fraction=0.2,
                              out=str(images["root"] / "run"), quiet=True)
    return result.run_dir


def test_gram_matrix_and_losses_match_hand_computations():
    f = torch.tensor([[[[1.0, 2.0], [0.0, 1.0]], [[0.0, 1.0], [3.0, 0.0]]]])  # [1, 2 channels, 2, 2]
    # channel 0 = (1, 2, 0, 1), channel 1 = (0, 1, 3, 0): dot products 6, 2, 2, 10 divided by C*H*W = 8
    assert torch.allclose(gram_matrix(f), torch.tensor([[[6.0, 2.0], [2.0, 10.0]]]) / 8)
    target = torch.ones(1, 2, 2, 2)
    # squared errors of f - 1: (0, 1, 1, 0, 1, 0, 4, 1) -> mean 1.0; the target's mean square is 1
    assert relative_mse(f, target).item() == pytest.approx(1.0)
    # f - 2 = (-1, 0, -2, -1, -2, -1, 1, -2): squares sum to 16, mean 2; the target's mean square is 4
    assert content_loss({"a": f}, {"a": 2 * target}, ["a"]).item() == pytest.approx(16 / 8 / 4)
    gram_target = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    expected = ((0.75 - 1) ** 2 + 0.25 ** 2 + 0.25 ** 2 + (1.25 - 1) ** 2) / 4 / 0.5
    assert style_loss({"a": f}, {"a": gram_target}, ["a"]).item() == pytest.approx(expected)
    # |differences| down the rows: (1, 1), (3, 1) -> 1.5; across the columns: (1, 1), (1, 3) -> 1.5
    assert total_variation(f).item() == pytest.approx(3.0)
    # --style-layer-weights: a weighted mean of the layers' losses (layer "a" as above, layer "b" matched exactly)
    two = ({"a": f, "b": f}, {"a": gram_target, "b": gram_matrix(f)}, ["a", "b"])
    assert style_loss(*two).item() == pytest.approx(expected / 2)
    assert style_loss(*two, layer_weights=[1.0, 3.0]).item() == pytest.approx(expected / 4)
    with pytest.raises(PixelforgeError, match="2 weights for 1 style layers"):
        style_loss({"a": f}, {"a": gram_target}, ["a"], layer_weights=[1.0, 3.0])


def test_the_loss_network_hooks_named_layers_and_refuses_unknown_ones():
    net = build_loss_network("lite0")
    features = net(torch.rand(1, 3, 64, 64))
    assert set(features) == set(net.content_layers) | set(net.style_layers)
    assert features["blocks.1.0.bn1"].shape[-1] == 32  # stride 2 at the expansion before blocks.1's stride
    assert not any(p.requires_grad for p in net.parameters())
    with pytest.raises(PixelforgeError, match="no layer 'blocks.9'"):
        build_loss_network("lite0", style_layers=["blocks.9"])
    with pytest.raises(PixelforgeError, match="vgg19 needs --weights"):
        build_loss_network("vgg19")


def test_softmax_feature_transform_is_swags_softmax_scaled_to_mean_one():
    from pixelforge.tasks.style.lossnet import softmax_features

    f = torch.tensor([[[[0.0, 1.0], [2.0, 0.0]]], [[[5.0, 5.0], [5.0, 5.0]]]])  # 2 images, 1 channel, 2x2
    smoothed = softmax_features(f)
    exps = torch.tensor([1.0, math.e, math.e ** 2, 1.0])  # image 0: exp of its activations over their mean
    assert torch.allclose(smoothed[0].flatten(), exps / exps.mean())
    assert torch.allclose(smoothed[1], torch.ones(1, 2, 2))  # each image on its own: a flat map becomes ones
    shifted = f + torch.tensor([3.0, -7.0]).view(2, 1, 1, 1)
    assert torch.allclose(softmax_features(shifted), smoothed)  # a softmax ignores a constant added to the map
    # The same map tiled 2x2 (a larger image with the same statistics) keeps its Gram matrix: a 512 px style
    # image's Gram matrices can be the targets of 256 px crops (a plain softmax would divide them by 16).
    g = torch.randn(1, 3, 4, 4)
    assert torch.allclose(gram_matrix(softmax_features(g.repeat(1, 1, 2, 2))), gram_matrix(softmax_features(g)),
                          rtol=1e-4)


def test_the_loss_network_smooths_its_feature_maps_only_when_asked():
    plain, smooth = build_loss_network("lite0"), build_loss_network("lite0", feature_transform="softmax")
    images = torch.rand(2, 3, 64, 64)
    raw, smoothed = plain(images), smooth(images)
    from pixelforge.tasks.style.lossnet import softmax_features

    for layer in raw:
        assert torch.allclose(smoothed[layer], softmax_features(raw[layer]), rtol=1e-4)
        assert raw[layer].min() >= 0 and raw[layer].max() <= 6  # the plain maps are Lite0's ReLU6 outputs
    deep = build_loss_network("lite0", feature_transform="softmax-deep")(images)
    for layer in raw:  # only the two deepest style layers are smoothed
        expected = softmax_features(raw[layer]) if layer in plain.style_layers[-2:] else raw[layer]
        assert torch.allclose(deep[layer], expected, rtol=1e-4)
    with pytest.raises(PixelforgeError, match="--feature-transform 'swag': choose none, softmax, softmax-deep"):
        build_loss_network("lite0", feature_transform="swag")


def test_optimisation_lowers_the_loss_from_content_and_from_noise():
    from pixelforge.tasks.style.gatys import stylize_by_optimisation

    net = build_loss_network("lite0")
    content, style = torch.rand(1, 3, 48, 48) * 0.5 + 0.25, torch.rand(1, 3, 48, 48)
    for optimizer, init in (("lbfgs", "content"), ("adam", "noise")):
        result = stylize_by_optimisation(net, content, style, steps=8, optimizer=optimizer, init=init, scales=1,
                                         lr=0.05)
        totals = [row["total"] for row in result.history]
        assert len(totals) == 8 and min(totals[-2:]) < totals[0]
        assert result.image.shape == content.shape and 0 <= result.image.min() and result.image.max() <= 1
    coloured = stylize_by_optimisation(net, content, style, steps=3, scales=2, preserve_colour=True)
    from pixelforge.tasks.style.images import rgb_to_ycbcr

    # luminance-only transfer: the chroma is the content's
    assert torch.allclose(rgb_to_ycbcr(coloured.image)[:, 1:], rgb_to_ycbcr(content)[:, 1:], atol=0.02)


def test_lbfgs_optimises_a_one_pixel_photo_laid_out_as_the_cli_loads_it():
    """A 1x1 photo (HWC permuted to CHW, as the CLI reads it) reached L-BFGS with strides its .view(-1) refused."""
    from pixelforge.tasks.style.gatys import stylize_by_optimisation

    content = torch.full((1, 1, 3), 0.5).permute(2, 0, 1)[None]
    result = stylize_by_optimisation(build_loss_network("lite0"), content, torch.rand(1, 3, 20, 20), steps=2)
    assert result.history and torch.isfinite(result.image).all()


@pytest.mark.parametrize("workers, expected", [(None, 0), (1, 1)])
def test_workers_sets_the_loader_workers_of_the_content_crops(images, workers, expected):
    """`--workers N` was ignored: the random crops were always cut in the training process."""
    from types import SimpleNamespace

    from pixelforge.engine.progress import EpochProgress
    from pixelforge.tasks.config import build_config
    from pixelforge.tasks.style.task import build_setup, prepare_data

    cfg = build_config(task="style", data=str(images["folder"]), style=str(images["style"]), img_size=32,
                       content_size=32, width=4, residual_blocks=1, val_fraction=0.2, workers=workers)
    setup = build_setup(cfg, prepare_data(cfg)[0], [], SimpleNamespace(device=torch.device("cpu")),
                        EpochProgress(quiet=True))
    assert setup.workers == expected


def test_the_seed_chooses_the_validation_photos(images):
    """--seed reached the initialisation and the batch order but not the split: the photos were shuffled with 0."""
    import random

    from pixelforge.tasks.config import build_config
    from pixelforge.tasks.style.task import prepare_data

    def val(seed: int) -> list:
        cfg = build_config(task="style", data=str(images["folder"]), style=str(images["style"]), val_fraction=0.4,
                           seed=seed)
        return prepare_data(cfg)[0]["val"]

    order = sorted(images["folder"].glob("*.png"))
    random.Random(0).shuffle(order)
    assert val(0) == order[:2]  # the default seed splits as before
    assert len({tuple(val(seed)) for seed in range(4)}) > 1


def test_split_folders_train_on_train_validate_on_val_and_never_read_test(images, tmp_path):
    """A content folder with train/, val/ and test/ keeps them, as every task does: test photos are never trained on."""
    import shutil

    from pixelforge.tasks.config import build_config
    from pixelforge.tasks.style.task import prepare_data

    layout = {"train": images["photos"][:3], "valid": images["photos"][3:4], "test": images["photos"][4:]}
    for split, photos in layout.items():
        (tmp_path / split).mkdir()
        for photo in photos:
            shutil.copy(photo, tmp_path / split / Path(photo).name)
    cfg = build_config(task="style", data=str(tmp_path), style=str(images["style"]), val_fraction=0.4)
    source = prepare_data(cfg)[0]
    assert sorted(p.parent.name for p in source["train"]) == ["train"] * 3
    assert [p.parent.name for p in source["val"]] == ["valid"]

    shutil.rmtree(tmp_path / "valid")  # no val/: validation is carved from train/, test/ still left alone
    source = prepare_data(cfg)[0]
    assert len(source["val"]) == 1 and len(source["train"]) == 2
    assert {p.parent.name for p in source["train"] + source["val"]} == {"train"}

    shutil.move(tmp_path / "train", tmp_path / "test" / "more")  # only test photos left: nothing to train on
    with pytest.raises(PixelforgeError, match="0 training and 0 validation"):
        prepare_data(cfg)


def test_a_fast_network_trains_two_steps_and_writes_its_report(tiny_run):
    from pixelforge.runs import folder as rd

    rows = rd.read_metrics(tiny_run / "metrics.csv")
    assert len(rows) == 1 and rows[0]["val_loss"] > 0 and "train_style" in rows[0]
    summary = rd.read_json(tiny_run / "summary.json")
    assert summary["monitor"] == "val_loss" and summary["train_images"] == 4  # 4 photos, batch 2: two steps
    assert (tiny_run / "examples.png").is_file() and "Fast style transfer" in (tiny_run / "report.html").read_text()


def test_the_report_shows_the_style_image_from_inside_the_run_and_says_which_row_is_which(tiny_run, images):
    page = (tiny_run / "report.html").read_text()
    assert "src='style_image.png'" in page and "bottom row" in page
    thumbnail = np.asarray(Image.open(tiny_run / "style_image.png"))
    assert thumbnail.shape == (64, 64, 3) and thumbnail.std() > 20  # the stripes, not a blank square


def test_gram_matrices_stay_fp32_under_bf16_autocast():
    """bf16's 8-bit mantissa would round a Gram matrix's sums; the style loss compares them to 1e-3 and below."""
    features = torch.rand(2, 8, 16, 16) + 1.0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(features.to(torch.bfloat16))
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, gram_matrix(features.to(torch.bfloat16).float()))


def test_bf16_training_keeps_the_loss_networks_depthwise_convolutions_in_fp32(images, tmp_path, monkeypatch):
    from pixelforge.engine import exact_speedups

    wrapped = []
    real = exact_speedups.keep_depthwise_fp32
    monkeypatch.setattr(exact_speedups, "keep_depthwise_fp32", lambda model: wrapped.append(real(model)) or wrapped[-1])
    run = pixelforge.train(str(images["folder"]), task="style", style=str(images["style"]), img_size=32, epochs=1,
                           batch_size=2, width=4, residual_blocks=1, val_fraction=0.2, precision="bf16-mixed",
                           accelerator="cpu", out=str(tmp_path / "run"), quiet=True)  # the CPU's bf16 policy
    assert wrapped and wrapped[0] > 0  # Lite0's depthwise convolutions, each wrapped
    assert run.best_metric > 0 and np.isfinite(run.best_metric)


def test_a_missing_style_image_or_wrong_layer_weights_are_refused_before_a_run_folder_exists(images, tmp_path):
    with pytest.raises(PixelforgeError, match="nope.png: image not found"):
        pixelforge.train(str(images["folder"]), task="style", style=str(tmp_path / "nope.png"), out=str(tmp_path / "r"))
    with pytest.raises(PixelforgeError, match="needs --style"):
        pixelforge.train(str(images["folder"]), task="style", out=str(tmp_path / "r"))
    with pytest.raises(PixelforgeError, match="--style-layer-weights 1.0,3.0: give one weight >= 0 per style layer"):
        pixelforge.train(str(images["folder"]), task="style", style=str(images["style"]), style_layer_weights=[1, 3],
                         out=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_style_and_content_images_are_read_as_every_task_reads_photos(tmp_path):
    """A 16-bit grey picture was pure white through PIL's convert("RGB"); alpha is laid on white."""
    from pixelforge.tasks.style.images import read_image

    ramp = np.tile(np.linspace(0, 4000, 32), (32, 1)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "scan.png")
    scan = read_image(tmp_path / "scan.png")
    assert scan.shape == (1, 3, 32, 32) and scan.min() < 0.05 and scan.max() > 0.95
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert read_image(tmp_path / "clear.png")[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]


def write_awkward_styles(folder: Path) -> None:
    """scan.png (16-bit) and phone.png (an EXIF rotation) in `folder`: the style files `convert("RGB")` copied
    wrongly (white, and sideways)."""
    ramp = np.tile(np.linspace(0, 4000, 40), (24, 1)).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "scan.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 40, 3), np.uint8)).save(folder / "phone.png",
                                                                                           exif=exif)


def test_the_package_s_copy_of_the_style_is_read_as_training_read_the_style(tmp_path):
    """`stylize PACKAGE` measures the style loss against the package's style.png; `convert("RGB")` wrote a 16-bit
    style as white and a phone's style photo sideways, so the run and its package measured against other styles."""
    from pixelforge.data.images import load_rgb
    from pixelforge.tasks.style.export import _write_style_image

    write_awkward_styles(tmp_path)
    for name in ("scan.png", "phone.png"):
        _write_style_image(str(tmp_path / name), tmp_path / f"copy-{name}")
        copy = np.asarray(Image.open(tmp_path / f"copy-{name}"))
        assert np.array_equal(copy, np.asarray(load_rgb(tmp_path / name))), name


def test_predict_takes_a_folder_and_a_second_photo_of_the_same_name_gets_its_own_file(tiny_run, images, tmp_path):
    for folder in ("ants", "bees"):  # class folders that each hold a 1.png
        (tmp_path / "photos" / folder).mkdir(parents=True)
        _photo(tmp_path / "photos" / folder / "1.png", len(folder))
    results = pixelforge.predict(tiny_run, [str(tmp_path / "photos")], out=tmp_path / "out")
    assert [Path(r["stylized"]).name for r in results] == ["1_stylized.png", "1-2_stylized.png"]


def test_training_on_photos_none_of_which_decode_in_a_split_is_one_line(images, tmp_path):
    (tmp_path / "photos").mkdir()
    _photo(tmp_path / "photos" / "good.png", 0)
    (tmp_path / "photos" / "cut.png").write_bytes(images["style"].read_bytes()[:100])
    with pytest.raises(PixelforgeError, match="none of the (training|validation) photos could be decoded .*cut.png"):
        pixelforge.train(str(tmp_path / "photos"), task="style", style=str(images["style"]), img_size=32, epochs=1,
                         batch_size=2, width=4, residual_blocks=1, out=str(tmp_path / "run"), quiet=True)


def test_checkpoints_load_in_a_fresh_process_even_with_old_instance_norm_keys(tiny_run, images, tmp_path):
    from pixelforge.runs import folder as rd
    from pixelforge.tasks.style.transformer import load_transformer

    code = ("import sys, torch; from pixelforge.tasks.style.apply import load_style_run, stylize_tensor; "
            "from pixelforge.tasks.style.images import read_image; run = load_style_run(sys.argv[1]); "
            "out = stylize_tensor(run.model, read_image(sys.argv[2])); print(tuple(out.shape), float(out.mean()))")
    done = subprocess.run([sys.executable, "-c", code, str(tiny_run), str(images["photos"][0])], capture_output=True,
                          text=True, env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    shape, mean = done.stdout.split(") ")
    assert shape == "(1, 3, 40, 48" and 0 < float(mean) < 1
    # A checkpoint from before PyTorch 0.4 kept instance-norm running statistics: they must not break loading.
    state = rd.load_checkpoint(tiny_run / "checkpoints" / "best.ckpt")["model"]
    old = dict(state)
    for key in [k for k in state if k.endswith("encoder.1.weight")]:
        prefix = key.rsplit(".", 1)[0]
        old[f"{prefix}.running_mean"], old[f"{prefix}.running_var"] = torch.zeros(4), torch.ones(4)
    with pytest.raises(RuntimeError, match="Unexpected running stats buffer"):  # what users hit
        torch.nn.Module.load_state_dict(load_transformer(state, 4, 1), old)
    net = load_transformer(old, 4, 1)
    assert torch.equal(net.encoder[1].weight, state["encoder.1.weight"])


def test_a_network_without_noise_input_loads_and_paints_as_before():
    from pixelforge.tasks.style.transformer import TransformerNet, load_transformer

    torch.manual_seed(0)
    before = TransformerNet(4, 1).eval()  # a run from before --noise-channels: no `noise` key in its state
    loaded = load_transformer(before.state_dict(), 4, 1)
    x = torch.rand(1, 3, 32, 40)
    assert loaded.noise is None and loaded.encoder[0][1].in_channels == 3
    assert torch.equal(loaded(x), before(x))


def test_a_noise_input_run_is_deterministic_at_any_size_and_its_package_agrees(images, tmp_path):
    import onnxruntime as ort

    from pixelforge.runs import folder as rd
    from pixelforge.tasks.config import load_config
    from pixelforge.tasks.style.apply import load_style_run, stylize_tensor
    from pixelforge.tasks.style.export import export_package

    run = pixelforge.train(str(images["folder"]), task="style", style=str(images["style"]), img_size=32, epochs=1,
                           batch_size=2, width=4, residual_blocks=1, val_fraction=0.2, noise_channels=2,
                           out=str(tmp_path / "run"), quiet=True).run_dir
    assert load_config(run / "config.yaml").noise_channels == 2
    assert rd.load_checkpoint(run / "checkpoints" / "best.ckpt")["noise_channels"] == 2
    model = load_style_run(run).model
    assert model.noise_channels == 2
    # wider than the noise tile (128 px), so the tile repeats; the same photo gives the same picture twice
    photo = torch.rand(1, 3, 36, 260)
    first, second = stylize_tensor(model, photo), stylize_tensor(load_style_run(run).model, photo)
    assert torch.equal(first, second)
    # the noise pattern changes the picture: the network does read it
    flat = torch.full((1, 3, 36, 260), 0.5)
    assert float(stylize_tensor(model, flat).std()) > 0
    package = export_package(run, tmp_path / "package")
    session = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(["stylized"], {"image": photo.numpy()})[0]
    assert np.abs(onnx_out - first.numpy()).max() <= 2 / 255


@pytest.fixture(scope="module")
def package(tiny_run, images) -> Path:
    return pixelforge.export(tiny_run, images["root"] / "pkg")


def test_fp16_package_is_checked_in_psnr_and_stylizes_under_precision(tiny_run, images, tmp_path, monkeypatch):
    from pixelforge.deploy.export import precision
    from pixelforge.deploy.runtime.registry import load_runtime

    package = pixelforge.export(tiny_run, tmp_path / "pkg", fp16=True)
    assert json.loads((package / "package.json").read_text())["models"] == {"fp32": "model.onnx",
                                                                           "fp16": "model.fp16.onnx"}
    parity = json.loads((package / "parity.json").read_text())
    assert parity["fp16"]["passed"] and 40 <= parity["fp16"]["min_psnr_vs_torch"] < parity["min_psnr_vs_torch"]
    photo = np.asarray(Image.open(images["photos"][0]))
    runtime = load_runtime(package, "fp16")
    fp16, fp32 = (r.predict_images([photo])[0]["image"].astype(int) for r in (runtime, load_runtime(package)))
    assert runtime.precision == "fp16" and np.abs(fp16 - fp32).mean() < 2
    monkeypatch.setattr(precision, "FP16_MIN_PSNR", 1000.0)  # unreachable: the fp16 check must refuse
    with pytest.raises(pixelforge.PixelforgeError, match=r"export refused: fp16 parity failed \(worst PSNR"):
        pixelforge.export(tiny_run, tmp_path / "refused", fp16=True)
    assert not (tmp_path / "refused").exists() and not list(tmp_path.glob(".refused*"))


def test_int8_package_is_checked_in_psnr_and_the_cli_stylizes_with_it_by_default(tiny_run, images, tmp_path, cli,
                                                                                   monkeypatch):
    from pixelforge.deploy.export import precision
    from pixelforge.deploy.runtime.registry import load_runtime

    package = tmp_path / "pkg"
    result = cli("export", tiny_run, "--int8", "--out", package)
    assert result.returncode == 0, result.stderr
    assert "Axis 1 is out-of-range" not in result.stderr  # the quantizer's per-channel chatter stays quiet
    manifest = json.loads((package / "package.json").read_text())
    assert manifest["models"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    assert manifest["default_precision"] == "int8"
    parity = json.loads((package / "parity.json").read_text())["int8"]
    assert parity["passed"] and 30 <= parity["min_psnr_vs_torch"] < 100 and parity["required_psnr_vs_torch"] == 30
    predicted = cli("predict", package, images["photos"][0], "--out", tmp_path / "out")  # torch-free, int8
    assert predicted.returncode == 0, predicted.stderr
    int8 = np.asarray(Image.open(next((tmp_path / "out").glob("*.png"))), np.float64) / 255
    fp32 = load_runtime(package, "fp32").predict_images([np.asarray(Image.open(images["photos"][0]))])[0]["image"]
    assert precision.psnr_db(fp32 / 255, int8) >= 30
    monkeypatch.setattr(precision, "INT8_MIN_PSNR", 1000.0)  # unreachable: the int8 check must refuse
    with pytest.raises(pixelforge.PixelforgeError, match=r"export refused: int8 parity failed \(worst PSNR.*"
                                                         r"try --calibration entropy"):
        pixelforge.export(tiny_run, tmp_path / "refused", int8=True)
    assert not (tmp_path / "refused").exists() and not list(tmp_path.glob(".refused*"))


def test_export_parity_runtime_and_video_flicker(tiny_run, package, images, tmp_path):
    import cv2

    from pixelforge.deploy.runtime.registry import load_runtime
    from pixelforge.deploy.video import run_video

    parity = json.loads((package / "parity.json").read_text())
    assert parity["passed"] and parity["max_abs_diff"] < 1e-3 and parity["sizes"] == [32, 48]
    assert (package / "style.png").is_file()
    runtime = load_runtime(package)
    from pixelforge.deploy.runtime.registry import RUNTIMES
    from pixelforge.deploy.runtime.style import StyleRuntime

    assert type(runtime) is StyleRuntime is RUNTIMES["style"]
    odd = np.asarray(Image.open(images["photos"][1]).resize((37, 29)))
    assert runtime.predict_images([odd])[0]["image"].shape == (29, 37, 3)  # padded to 4s and cropped back
    # A static camera: a still background with a small square moving across it.
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (48, 40))
    background = np.asarray(Image.open(images["photos"][2]))[..., ::-1]
    for t in range(6):
        frame = background.copy()
        frame[10:18, 4 + 5 * t:12 + 5 * t] = 255
        writer.write(np.ascontiguousarray(frame))
    writer.release()
    plain = run_video(package, str(clip), tmp_path / "plain.mp4")
    blended = run_video(package, str(clip), tmp_path / "blended.mp4", blend=0.8)
    assert plain.frames == blended.frames == 6 and (tmp_path / "blended.mp4").stat().st_size > 0
    assert plain.summary["flicker"] > 0 and blended.summary["flicker"] < plain.summary["flicker"]
    from typer.testing import CliRunner

    from pixelforge.cli import app

    done = CliRunner().invoke(app, ["video", str(tiny_run), str(clip), "--out", str(tmp_path / "run.mp4"), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output.strip().splitlines()[-1])["flicker"] == pytest.approx(plain.summary["flicker"], rel=0.05)
    # serve: the upload comes back stylized at its own size, for the page's before/after view
    from fastapi.testclient import TestClient

    from pixelforge.deploy.serve.server import ServerSettings, create_app

    with TestClient(create_app(ServerSettings(package=str(package)))) as client:
        assert client.get("/v1/model").json()["task"] == "style"
        with open(images["photos"][3], "rb") as handle:
            answer = client.post("/v1/predict", files={"file": ("p.png", handle, "image/png")}).json()["predictions"][0]
    stylized = Image.open(io.BytesIO(base64.b64decode(answer["image_png"])))
    assert answer["task"] == "style" and stylized.size == (48, 40)


def test_images_narrower_than_the_first_convolution_s_padding_are_stylized_by_the_run_and_the_package(tiny_run,
                                                                                                        package):
    """A 3 px strip or a 1 px icon: the 9x9 convolution's reflection padding stopped `predict` with a traceback."""
    from pixelforge.deploy.runtime.registry import load_runtime
    from pixelforge.tasks.style.apply import load_style_run, stylize_tensor

    model, runtime = load_style_run(tiny_run).model, load_runtime(package)
    for height, width in ((40, 3), (1, 1), (4, 4)):
        assert stylize_tensor(model, torch.rand(1, 3, height, width)).shape == (1, 3, height, width)
        strip = np.full((height, width, 3), 128, np.uint8)
        assert runtime.predict_images([strip])[0]["image"].shape == (height, width, 3)


def test_predict_with_a_run_shrinks_a_photo_larger_than_the_package_s_max_side_as_the_package_does(tiny_run, package,
                                                                                                    tmp_path):
    """`predict RUN` stylized a 24-megapixel photo at full size (tens of GB for the default network) where `predict
    PACKAGE` shrinks it to `max_side`: the two gave different pictures, and the run could run out of memory."""
    from pixelforge.deploy.runtime.registry import load_runtime
    from pixelforge.deploy.runtime.style import MAX_SIDE
    from pixelforge.tasks.style.apply import predict_files

    wide = tmp_path / "wide.png"
    ramp = np.linspace(0, 255, MAX_SIDE + 40, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (24, 1))] * 3, -1)).save(wide)
    [eager] = predict_files(tiny_run, [wide], tmp_path / "run")
    [packaged] = load_runtime(package).predict_files([wide], tmp_path / "package")
    by_run, by_package = (np.asarray(Image.open(r["stylized"]), np.int16) for r in (eager, packaged))
    assert by_run.shape == by_package.shape == (round(24 * MAX_SIDE / (MAX_SIDE + 40)), MAX_SIDE, 3)
    assert np.abs(by_run - by_package).max() <= 3  # ONNX Runtime vs PyTorch (export's parity allows 2/255)


def test_a_built_in_arbitrary_style_takes_images_narrower_than_its_padding_too():
    """The same 4-pixel reflection pad in Magenta's 26-style network: `stylize ICON 7 --method arbitrary` was an
    ONNX Runtime traceback for a side of 4 px or less."""
    from pixelforge.deploy.runtime.arbitrary import ArbitraryStylizer

    stylizer = ArbitraryStylizer()
    for height, width in ((3, 40), (1, 1), (4, 4)):
        assert stylizer.stylize(np.full((height, width, 3), 128, np.uint8), "7").shape == (height, width, 3)


def test_serve_stylizes_with_the_package_an_uploaded_style_image_or_a_builtin_style(package, images):
    from fastapi.testclient import TestClient

    from pixelforge.deploy.serve.server import ServerSettings, create_app

    photo, style = images["photos"][3].read_bytes(), images["style"].read_bytes()
    decode = lambda answer: np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["image_png"]))), int)  # noqa: E731
    with TestClient(create_app(ServerSettings(package=str(package)))) as client:
        post = lambda files, query="": client.post(f"/v1/stylize{query}", files=files)  # noqa: E731
        own = post({"file": ("p.png", photo, "image/png")}).json()["predictions"][0]
        same = client.post("/v1/predict", files={"file": ("p.png", photo, "image/png")}).json()["predictions"][0]
        second = post([("file", ("p.png", photo, "image/png")), ("style", ("s.png", style, "image/png"))])
        other = post([("file", ("p.png", photo, "image/png")), ("style", ("o.png", images["photos"][0].read_bytes(),
                                                                           "image/png"))]).json()["predictions"][0]
        builtin = post({"file": ("p.png", photo, "image/png")}, "?builtin=7").json()["predictions"][0]
        both = post([("file", ("p.png", photo, "image/png")), ("style", ("s.png", style, "image/png"))], "?builtin=7")
        unknown = post({"file": ("p.png", photo, "image/png")}, "?builtin=99")
        no_photo = post({"style": ("s.png", style, "image/png")})
        not_image = post([("file", ("p.png", photo, "image/png")), ("style", ("s.txt", b"not an image", "text/plain"))])
    assert own["style"] == "package" and np.array_equal(decode(own), decode(same))
    assert second.status_code == 200, second.text
    arbitrary = second.json()["predictions"][0]
    assert arbitrary["style"] == "arbitrary" and decode(arbitrary).shape == (40, 48, 3)
    # the uploaded style decides the picture: another style image gives another one, and neither is the package's
    assert np.abs(decode(arbitrary) - decode(other)).mean() > 5 and np.abs(decode(arbitrary) - decode(own)).mean() > 5
    assert builtin["style"] == "built-in 7" and decode(builtin).shape == (40, 48, 3)
    assert both.status_code == 400 and "at most one style" in both.json()["detail"]
    assert unknown.status_code == 422 and "not a built-in style" in unknown.json()["detail"]
    assert no_photo.status_code == 400 and "'file'" in no_photo.json()["detail"]
    assert not_image.status_code == 415, not_image.text


def test_stylize_refuses_an_image_larger_than_free_memory_allows_and_names_a_size(images, tmp_path, monkeypatch):
    """Optimising a huge photo at `--size 0` was ended by the OOM killer with no message; now one line first."""
    from typer.testing import CliRunner

    from pixelforge.cli import app
    from pixelforge.engine import cpu_memory

    Image.new("RGB", (1600, 1200), (120, 80, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(cpu_memory, "available_memory_bytes", lambda: 2 * 2**30)
    done = CliRunner().invoke(app, ["stylize", str(tmp_path / "big.png"), str(images["style"]), "--out",
                                    str(tmp_path / "out.png"), "--size", "0"])
    assert str(done.exception) == (f"{tmp_path / 'big.png'}: stylizing 1600x1200 by optimisation needs about 4.5 GB "
                                   f"of RAM and 2.0 GB are free; pass --size 768 or less (the longer side in px)")
    assert not (tmp_path / "out.png").exists()


def test_stylize_command_reports_the_same_keys_for_every_method(tiny_run, images, tmp_path):
    from typer.testing import CliRunner

    from pixelforge.cli import app

    runner = CliRunner()
    keys = {"seconds", "content_loss", "style_loss", "loss_net"}
    content, style = str(images["photos"][0]), str(images["style"])
    calls = [[content, style, "--out", str(tmp_path / "g.png"), "--steps", "3", "--size", "48"],
             [str(tiny_run), content, "--out", str(tmp_path / "f.png"), "--size", "48"],
             [content, "7", "--out", str(tmp_path / "a.png"), "--method", "arbitrary", "--size", "48"]]
    reports = []
    for args in calls:
        done = runner.invoke(app, ["stylize", *args, "--json"])
        assert done.exit_code == 0, done.output
        reports.append(json.loads(done.output.strip().splitlines()[-1]))
        assert keys <= set(reports[-1]) and reports[-1]["loss_net"] == "tf_efficientnet_lite0"
        assert Image.open(reports[-1]["out"]).size == (48, 40)
    assert reports[0]["style_loss"] > 0 and reports[1]["style_loss"] > 0  # the run's style image is known
    assert reports[2]["style_loss"] is None  # a built-in style has no image to measure against
    assert (tmp_path / "g.losses.csv").is_file() and reports[0]["loss_curve"] == str(tmp_path / "g.losses.png")
    again = runner.invoke(app, ["stylize", *calls[0], "--json"])
    assert again.exit_code != 0 and "already exists" in str(again.exception or again.output)
    first_curve = (tmp_path / "g.losses.csv").read_bytes()
    other = runner.invoke(app, ["stylize", content, style, "--out", str(tmp_path / "g.jpg"), "--steps", "3",
                                "--size", "48", "--json"])  # the same stem: its curve was written over g.png's
    assert json.loads(other.output.strip().splitlines()[-1])["loss_curve"] == str(tmp_path / "g.losses-2.png")
    assert (tmp_path / "g.losses.csv").read_bytes() == first_curve and (tmp_path / "g.losses-2.csv").is_file()
    (tmp_path / "not-a-run").mkdir()  # a folder first is a model, and this one is none: said so, not "cannot read"
    wrong = runner.invoke(app, ["stylize", str(tmp_path / "not-a-run"), content, "--out", str(tmp_path / "w.png")])
    assert "neither a style run" in str(wrong.exception) and not (tmp_path / "w.png").exists()


def test_pixelforge_stylize_returns_what_the_command_prints_with_json(tiny_run, images, tmp_path, cli):
    """`pixelforge.stylize` is `pixelforge stylize` (it had no Python function): same options, its --json report."""
    content, style = str(images["photos"][0]), str(images["style"])
    report = pixelforge.stylize(content, style, out=tmp_path / "g.png", steps=3, size=48, quiet=True)
    done = cli("stylize", content, style, "--out", str(tmp_path / "c.png"), "--steps", "3", "--size", "48", "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(report) == set(printed) and report["method"] == printed["method"] == "gatys"
    assert report["out"] == str(tmp_path / "g.png") and Image.open(report["out"]).size == (48, 40)
    assert report["loss_curve"] == str(tmp_path / "g.losses.png") and report["style_loss"] > 0
    fast = pixelforge.stylize(tiny_run, content, tmp_path / "f.png", size=48)
    assert fast["method"].startswith("fast") and fast["size"] == [48, 40] and "loss_curve" not in fast
    with pytest.raises(PixelforgeError, match="already exists"):
        pixelforge.stylize(tiny_run, content, tmp_path / "f.png", size=48)


def test_a_run_trained_on_softmax_losses_is_measured_with_them_as_a_run_and_as_a_package(images, tmp_path):
    from typer.testing import CliRunner

    from pixelforge.cli import app
    from pixelforge.runs import folder as rd
    from pixelforge.tasks.config import load_config
    from pixelforge.tasks.style.export import export_package
    from pixelforge.tasks.style.methods import trained_feature_transform

    run = pixelforge.train(str(images["folder"]), task="style", style=str(images["style"]), img_size=32, epochs=1,
                           batch_size=2, width=4, residual_blocks=1, val_fraction=0.2, feature_transform="softmax",
                           style_layer_weights=[1, 1, 1, 3, 3], out=str(tmp_path / "run"), quiet=True).run_dir
    config = load_config(run / "config.yaml")
    assert config.feature_transform == "softmax" and config.style_layer_weights == [1, 1, 1, 3, 3]
    assert rd.load_checkpoint(run / "checkpoints" / "best.ckpt")["feature_transform"] == "softmax"
    runner = CliRunner()
    content = str(images["photos"][0])
    reports = {}
    for name, extra in (("own", []), ("none", ["--feature-transform", "none"])):
        done = runner.invoke(app, ["stylize", str(run), content, "--out", str(tmp_path / f"{name}.png"), "--size", "48",
                                   "--json", *extra])
        assert done.exit_code == 0, done.output
        reports[name] = json.loads(done.output.strip().splitlines()[-1])
    assert reports["own"]["feature_transform"] == "softmax" and reports["none"]["feature_transform"] == "none"
    assert reports["own"]["style_loss"] != pytest.approx(reports["none"]["style_loss"], rel=1e-3)
    package = export_package(run, tmp_path / "package")
    assert trained_feature_transform(package) == "softmax"
    bad = runner.invoke(app, ["stylize", str(run), content, "--out", str(tmp_path / "bad.png"),
                              "--feature-transform", "swag"])
    assert bad.exit_code != 0 and "choose none, softmax, softmax-deep" in str(bad.exception or bad.output)


@pytest.mark.slow
def test_vgg19_loss_network_loads_a_user_file(tmp_path):
    import torchvision

    path = tmp_path / "vgg19.pth"
    torch.save(torchvision.models.vgg19(weights=None).features.state_dict(), path)
    # a trimmed file (features only, keys without the "features." prefix) is rejected clearly, the full naming works
    with pytest.raises(PixelforgeError, match="tensors are missing"):
        build_loss_network("vgg19", str(path))
    state = torch.load(path, weights_only=True)
    torch.save({f"features.{k}": v for k, v in state.items()}, path)
    net = build_loss_network("vgg19", str(path))
    features = net(torch.rand(1, 3, 64, 64))
    assert features["relu4_2"].shape == (1, 512, 8, 8) and (features["relu1_1"] >= 0).all()


def test_web_page_uploads_a_second_image_as_the_style_and_shows_before_style_after(package, images, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    from pixelforge.deploy.serve.server import ServerSettings, create_app
    from tests.deploy.conftest import live_server
    from tests.deploy.test_server_dense import _browser

    big = Image.open(images["photos"][3]).resize((192, 160))  # large enough to see in the screenshot
    big.save(tmp_path / "photo.png")
    read_page = """() => {
        const canvas = document.getElementById("canvas");
        const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        return {width: canvas.width, height: canvas.height, pixels: Array.from(pixels),
                title: document.getElementById("dense-title").textContent,
                values: [...document.querySelectorAll(".dense-row")].map((r) => r.textContent),
                error: document.getElementById("error").textContent};
    }"""
    with live_server(create_app(ServerSettings(str(package)))) as url, sync_api.sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(url + "/")
            page.wait_for_function("document.getElementById('style-row').style.display === 'block'")
            assert not page.is_visible("#style-file")  # the second upload appears once an arbitrary style is picked
            page.select_option("#style-choice", "image")
            page.set_input_files("#style-file", str(images["style"]))
            page.set_input_files("#file-input", str(tmp_path / "photo.png"))
            page.wait_for_function("document.getElementById('dense-title').textContent === 'Before, style and after'",
                                   timeout=30_000)
            shown = page.evaluate(read_page)
            page.screenshot(path=str(tmp_path / "style_page.png"), full_page=True)
            page.select_option("#style-choice", "package")  # the same photo again, in the package's style
            page.wait_for_function("document.getElementById('dense-title').textContent === 'Before and after'",
                                   timeout=30_000)
            own = page.evaluate(read_page)
        finally:
            browser.close()
    print(f"\nstyle page screenshot: {tmp_path / 'style_page.png'}")
    assert shown["error"] == "" and own["error"] == ""
    assert any("uploaded style image" in v for v in shown["values"]) and any("package" in v for v in own["values"])
    pixels = np.asarray(shown["pixels"], np.uint8).reshape(shown["height"], shown["width"], 4)[..., :3].astype(int)
    w = (shown["width"] - 16) // 3
    assert own["width"] < shown["width"] and abs(shown["height"] - 160 * w / 192) <= 2  # three tiles, then two
    before = np.asarray(big.resize((w, shown["height"])), int)
    assert np.abs(pixels[:, :w] - before).mean() < 12  # the photo on the left
    middle = pixels[:, w + 8:2 * w + 8].reshape(-1, 3)  # the stripes' red and blue lines in the middle tile
    assert ((middle == (230, 40, 40)).all(1) | (np.abs(middle - (230, 40, 40)).sum(1) < 40)).any()
    assert (np.abs(middle - (40, 40, 230)).sum(1) < 40).any()
    assert np.abs(pixels[:, -w:] - before).mean() > 5  # the stylized photo on the right differs from it


def test_auto_precision_may_train_style_networks_in_bf16():
    """Measured (docs/style-transfer.md, "bf16 training"): `auto` follows the CPU rule for style, as for classify."""
    from pixelforge.tasks.registry import get_task

    assert get_task("style").bf16_reason(None) is None


def test_a_run_trained_with_relative_paths_exports_from_another_folder(images, tmp_path, monkeypatch):
    # `train --data ../photos --style ../style.png` from one folder, then `export`/`video RUN` from another: the
    # run's config.yaml held the relative paths, so export looked for the parity photos beside itself and refused.
    monkeypatch.chdir(images["folder"])
    result = pixelforge.train("../photos", task="style", style="../style.png", img_size=32, epochs=1, batch_size=2,
                              width=4, residual_blocks=1, val_fraction=0.2, out=str(tmp_path / "run"), quiet=True)
    saved = (result.run_dir / "config.yaml").read_text()
    assert f"data: {images['folder']}" in saved and f"style: {images['style']}" in saved
    monkeypatch.chdir(tmp_path)
    package = pixelforge.export(result.run_dir, tmp_path / "pkg")
    assert json.loads((package / "parity.json").read_text())["passed"]


def test_the_run_s_model_card_states_its_best_epoch_losses_and_the_weights_origin(tiny_run, package):
    card = (tiny_run / "model_card.md").read_text()
    check_common_sections(tiny_run, card)
    summary = rd.read_json(tiny_run / "summary.json")
    best = next(r for r in rd.read_metrics(tiny_run / "metrics.csv") if r["epoch"] == summary["best_epoch"])
    for key, name in (("loss", "perceptual loss (weighted sum)"), ("content", "content loss"), ("style", "style loss")):
        assert row(name, fmt(best[f"train_{key}"]), fmt(best[f"val_{key}"])) in card
    assert "Apache-2.0" in card and "Magenta" in card  # the Lite0 loss network's and the arbitrary networks' origin
    check_package_card(package, tiny_run)


def test_predict_json_from_the_run_and_its_package_has_the_keys_every_task_s_rows_have(tiny_run, package, images,
                                                                                       tmp_path, cli):
    """`path`, `task`, and `output` beside the task's own `stylized` (docs/deployment.md), the same keys both ways;
    the broken file's row has no `output`."""
    (tmp_path / "broken.png").write_bytes(b"not an image")
    check_run_and_package(cli, tiny_run, package, [images["photos"][0], tmp_path / "broken.png"], tmp_path, "style",
                          "stylized")
