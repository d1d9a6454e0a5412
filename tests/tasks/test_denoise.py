"""`--task denoise` end to end on tiny photos: 2-step training of each model, evaluation beside the classical
denoisers with the interface's keys, predict keeping size and bit depth, ONNX export with parity, the package
predicting without torch as the run does, and the web page's answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import pixelforge
from pixelforge.data.masks.images import load_image_any
from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd
from pixelforge.tasks.common.card import fmt
from tests.deploy.test_runtime_without_torch import NO_TORCH
from tests.card_checks import card_and_metrics, check_common_sections, check_package_card, row
from tests.output_checks import check_run_and_package
from tests.engine.test_train import InterruptAt

pytestmark = pytest.mark.xdist_group("denoise")  # one training shared by the tests below (loadgroup)
TINY = {"epochs": 1, "crops_per_image": 1, "batch_size": 2, "img_size": 32, "val_fraction": 0.34, "quiet": True,
        "workers": 0}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Six 40 x 56 crops of scikit-image's colour photos, in a class folder (which denoising ignores)."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "any_class").mkdir()
    for i, image in enumerate([data.astronaut(), data.coffee(), data.chelsea()] * 2):
        Image.fromarray(image[60 + 20 * i:100 + 20 * i, 80:136]).save(folder / "any_class" / f"p{i}.png")
    return folder


@pytest.fixture(scope="module")
def dncnn_run(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "dncnn"
    result = pixelforge.train(str(photos), task="denoise", model="dncnn", depth=3, features=8, out=str(out), **TINY)
    return result.run_dir


def test_dncnn_trains_two_steps_and_evaluates_beside_the_classical_denoisers(dncnn_run, photos):
    rows = rd.read_metrics(dncnn_run / "metrics.csv")
    assert len(rows) == 1 and rows[0]["val_psnr"] > 0 and (dncnn_run / "report.html").is_file()
    assert rd.read_json(dncnn_run / "summary.json")["train_images"] == 4  # 4 train crops, batch 2: two steps
    metrics = json.loads(json.dumps(pixelforge.evaluate(dncnn_run, data=str(photos)).to_json()))  # `--json`'s dict
    assert {"psnr", "ssim", "psnr_noisy", "baselines"} <= set(metrics)
    assert set(metrics["baselines"]) == {"nl_means", "wavelet"}
    assert all({"psnr", "ssim"} <= set(b) for b in metrics["baselines"].values())
    # the run's own 4 training images are left out of its folder (tasks/common/held_out.py)
    assert metrics["num_images"] == 2 and metrics["split"] == "all" and metrics["excluded_training_images"] == 4
    # the classical denoisers do their job on the same noisy images (sigma 25: the input is ~20 dB)
    assert 19 < metrics["psnr_noisy"] < 22
    assert all(b["psnr"] > metrics["psnr_noisy"] + 3 for b in metrics["baselines"].values())
    assert Path(metrics["figures"]["examples"]).is_file()


def test_evaluate_on_its_own_folder_leaves_out_the_training_images_unless_asked(dncnn_run, photos, tmp_path,
                                                                               caplog):
    import shutil

    from pixelforge.tasks.config import load_config
    from pixelforge.tasks.denoise.task import prepare_data
    from pixelforge.tasks.registry import get_task

    trained = prepare_data(load_config(dncnn_run / "config.yaml"))[0].split("train")
    with caplog.at_level("WARNING", logger="pixelforge"):
        held_out = pixelforge.evaluate(dncnn_run, data=str(photos), out=tmp_path / "held-out").metrics
    assert held_out["excluded_training_images"] == len(trained) == 4 and held_out["num_images"] == 2
    assert "4 of 6 images are the run's training images" in caplog.text
    assert "(4 training images left out)" in get_task("denoise").format_metrics(held_out)
    everything = pixelforge.evaluate(dncnn_run, data=str(photos), include_train=True, out=tmp_path / "all").metrics
    assert everything["num_images"] == 6 and everything["excluded_training_images"] is None
    (tmp_path / "copies").mkdir()  # the training images alone, under other names: nothing held out to score
    for i, item in enumerate(trained):
        shutil.copy(item.clean, tmp_path / "copies" / f"copy{i}.png")
    with pytest.raises(PixelforgeError, match=r"all 4 images in split 'all' are the run's own training images.*"
                                              r"--include-train"):
        pixelforge.evaluate(dncnn_run, data=str(tmp_path / "copies"), out=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_the_report_says_when_it_scored_only_the_first_val_images(dncnn_run, tmp_path, monkeypatch):
    import shutil

    from pixelforge.tasks.denoise import report

    run = shutil.copytree(dncnn_run, tmp_path / "run")
    monkeypatch.setattr(report, "REPORT_IMAGES", 1)  # the run holds out 2 images
    report.write_denoising_report(run)
    assert "evaluated on the first 1 of the 2 images of the <b>val</b> split" in (run / "report.html").read_text()


def test_the_report_names_a_training_image_it_skipped(dncnn_run, tmp_path):
    import shutil

    from pixelforge.tasks.denoise.report import write_denoising_report

    run = shutil.copytree(dncnn_run, tmp_path / "run")
    summary = rd.read_json(run / "summary.json")
    rd.write_json(run / "summary.json", {**summary, "unreadable_images": ["/data/x.png: not an image"]})
    write_denoising_report(run)
    assert "Skipped images</h2><ul><li>/data/x.png: not an image</li>" in (run / "report.html").read_text()


def test_a_resumed_run_draws_the_crops_and_noise_an_uninterrupted_one_does(photos, tmp_path):
    """Each crop was drawn from a count of the draws made, which started again from 0 on resume."""
    options = dict(TINY, task="denoise", model="dncnn", depth=3, features=8, epochs=2)
    pixelforge.train(str(photos), out=str(tmp_path / "straight"), **options)
    with pytest.raises(PixelforgeError, match="resume with"):  # after the first of epoch 1's two steps
        pixelforge.train(str(photos), out=str(tmp_path / "cut"), callbacks=[InterruptAt(1)], **options)
    pixelforge.train(resume=tmp_path / "cut")
    expected, got = (rd.load_checkpoint(tmp_path / run / "checkpoints" / "last.ckpt")["model"]
                     for run in ("straight", "cut"))
    assert all(torch.equal(tensor, got[key]) for key, tensor in expected.items())


def test_predict_keeps_size_channels_and_16_bit_depth(dncnn_run, tmp_path):
    grey16 = (data.camera()[:45, :61].astype(np.uint16) * 257)
    Image.fromarray(grey16).save(tmp_path / "scan.png")
    Image.fromarray(data.coffee()[:33, :47]).save(tmp_path / "odd.png")
    results = pixelforge.predict(dncnn_run, [tmp_path / "scan.png", tmp_path / "odd.png"], out=tmp_path / "out")
    scan, odd = load_image_any(results[0]["output"]), load_image_any(results[1]["output"])
    assert scan.dtype == np.uint16 and scan.shape == (45, 61, 1) and scan.max() > 255
    assert odd.dtype == np.uint8 and odd.shape == (33, 47, 3)
    with pytest.raises(pixelforge.PixelforgeError, match="already exists"):  # never over an earlier output
        pixelforge.predict(dncnn_run, [tmp_path / "odd.png"], out=tmp_path / "out")


def test_a_photo_larger_than_a_tile_is_denoised_tile_by_tile_and_the_tiles_join_exactly(dncnn_run, tmp_path,
                                                                                        monkeypatch):
    """A denoiser works at full resolution: a 108-megapixel scan took 16 GB. Above a tile's size the model sees one
    tile (and its margin) at a time; a DnCNN of depth 3 sees 3 pixels to each side, so a margin of 4 joins exactly."""
    from pixelforge.deploy.runtime import denoise as runtime_denoise
    from pixelforge.tasks.denoise import evaluate
    from pixelforge.tasks.denoise.evaluate import denoise_array, load_denoise_run

    photo = data.astronaut()[100:170, 80:180]  # 70 x 100
    Image.fromarray(photo).save(tmp_path / "big.png")
    whole = denoise_array(load_denoise_run(dncnn_run), photo)
    monkeypatch.setattr(runtime_denoise, "TILE", 32)
    monkeypatch.setattr(runtime_denoise, "MARGIN", 4)
    seen = []
    monkeypatch.setattr(evaluate, "denoise_array", lambda run, image: (seen.append(image.shape[:2]),
                                                                        denoise_array(run, image))[1])
    result = pixelforge.predict(dncnn_run, [tmp_path / "big.png"], out=tmp_path / "out")[0]
    assert seen and max(max(shape) for shape in seen) <= 32 + 2 * 4  # the model never saw the whole photo
    assert np.array_equal(load_image_any(result["output"]), whole)


def test_predict_puts_back_the_transparency_of_rgba_and_grey_alpha_images(dncnn_run, tmp_path):
    """RGBA and LA images came back opaque: the alpha was dropped with the scene's decoding."""
    alpha = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (30, 1))
    rgba = np.dstack([data.coffee()[:30, :40], alpha])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "icon.png")
    Image.fromarray(np.dstack([data.camera()[:30, :40], alpha]), "LA").save(tmp_path / "grey.png")
    results = pixelforge.predict(dncnn_run, [tmp_path / "icon.png", tmp_path / "grey.png"], out=tmp_path / "out")
    for result in results:
        with Image.open(result["output"]) as written:
            assert written.mode == "RGBA" and written.size == (40, 30)
            np.testing.assert_array_equal(np.asarray(written.getchannel("A")), alpha)
    Image.fromarray(rgba[..., :3]).save(tmp_path / "flat.png")  # the colours are denoised as without alpha
    flat = pixelforge.predict(dncnn_run, [tmp_path / "flat.png"], out=tmp_path / "flat")
    np.testing.assert_array_equal(load_image_any(results[0]["output"]), load_image_any(flat[0]["output"]))


def test_predict_gives_a_second_photo_of_the_same_name_its_own_output(dncnn_run, tmp_path):
    """Class folders each holding a 1.png: the folder was refused ("two input files share a name stem")."""
    for folder in ("ants", "bees"):
        (tmp_path / "photos" / folder).mkdir(parents=True)
        Image.fromarray(data.coffee()[:20, :24]).save(tmp_path / "photos" / folder / "1.png")
    results = pixelforge.predict(dncnn_run, [tmp_path / "photos"], out=tmp_path / "out")
    assert [Path(r["output"]).name for r in results] == ["1.png", "1-2.png"]


def test_predict_on_only_corrupt_images_is_one_line_and_leaves_no_empty_folder(dncnn_run, tmp_path, cli):
    """It left an empty RUN/predictions-N behind and printed "error:" twice on its line."""
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"garbage")
    (tmp_path / "bad" / "b.png").write_bytes(b"\x89PNG cut short")
    before = sorted(dncnn_run.glob("predictions*"))
    result = cli("predict", dncnn_run, tmp_path / "bad")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and result.stdout == "" and len(lines) == 1, result.stderr
    assert lines[0].count("error:") == 1 and "none of the 2 file(s) given could be predicted: " in lines[0]
    assert "a.jpg: not an image format PIL can identify" in lines[0] and lines[0].endswith("(and 1 more failed)")
    assert sorted(dncnn_run.glob("predictions*")) == before
    (tmp_path / "mine").mkdir()  # an empty --out the user made stays theirs
    assert cli("predict", dncnn_run, tmp_path / "bad", "--out", tmp_path / "mine").returncode == 2
    assert (tmp_path / "mine").is_dir()


def test_evaluate_scores_images_under_the_ssim_window_and_says_which_file_it_skipped(dncnn_run, tmp_path, caplog,
                                                                                    recwarn):
    """A 1 px icon or a 3 px strip crashed SSIM's padding with a traceback; an unreadable file was left out silently."""
    from pixelforge.tasks.registry import get_task

    (tmp_path / "odd").mkdir()
    Image.fromarray(data.coffee()[:1, :1]).save(tmp_path / "odd" / "icon.png")
    Image.fromarray(data.coffee()[:40, :3]).save(tmp_path / "odd" / "strip.png")
    (tmp_path / "odd" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with caplog.at_level("WARNING", logger="pixelforge"):
        result = pixelforge.evaluate(dncnn_run, data=str(tmp_path / "odd"))
    assert result.metrics["num_images"] == 2 and result.metrics["ssim"] is None
    assert len(result.unreadable) == 1 and "cut.png" in caplog.text
    assert "SSIM n/a" in get_task("denoise").format_metrics(result.metrics)
    # the classical baselines leave a 1 px icon as it is: scikit-image's noise estimate warned and gave NaN
    assert not [w for w in recwarn if "skimage" in w.filename or "numpy" in w.filename], [str(w.message) for w in recwarn]


def test_a_split_whose_only_image_is_broken_names_the_file(tmp_path):
    (tmp_path / "photos").mkdir()
    Image.fromarray(data.coffee()[:40, :40]).save(tmp_path / "photos" / "good.png")
    (tmp_path / "photos" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(pixelforge.PixelforgeError, match=r"no readable images in the (train|val) split \(.*cut.png"):
        pixelforge.train(str(tmp_path / "photos"), task="denoise", model="dncnn", depth=3, features=8,
                         out=str(tmp_path / "run"), **TINY)


def test_export_passes_parity_and_the_package_predicts_without_torch_as_the_run(dncnn_run, photos, tmp_path, cli):
    pixelforge.export(dncnn_run, tmp_path / "pkg")
    check_package_card(tmp_path / "pkg", dncnn_run)
    parity = json.loads((Path(tmp_path / "pkg") / "parity.json").read_text())
    assert parity["passed"] and parity["max_abs_diff"] < 1e-3
    image = sorted((photos / "any_class").glob("*.png"))[0]
    expected = load_image_any(pixelforge.predict(dncnn_run, [image], out=tmp_path / "run")[0]["output"])
    script = NO_TORCH + ("from pixelforge.deploy.runtime import predict_package\n"
                         "predict_package(sys.argv[1], [sys.argv[2]], sys.argv[3])\n"
                         "assert not [m for m in sys.modules if m.startswith('torch')]\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "pkg"), str(image), str(tmp_path / "onnx")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = load_image_any(tmp_path / "onnx" / image.name)
    assert got.shape == expected.shape and np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    (tmp_path / "broken.png").write_bytes(b"not an image")  # the common keys, the same from the run and the package
    check_run_and_package(cli, dncnn_run, tmp_path / "pkg", [image, tmp_path / "broken.png"], tmp_path / "keys",
                          "denoise", "output")


def test_fp16_and_int8_packages_are_checked_in_psnr_and_predict_under_precision(dncnn_run, photos, tmp_path, cli):
    done = cli("export", dncnn_run, "--out", tmp_path / "pkg", "--fp16", "--int8", "--max-int8-drop", "100")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "pkg" / "package.json").read_text())
    assert manifest["models"] == {"fp32": "model.onnx", "int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}
    parity = json.loads((tmp_path / "pkg" / "parity.json").read_text())
    assert parity["fp16"]["passed"] and abs(parity["fp16"]["psnr_drop_db"]) <= 0.1 < parity["fp16"]["min_psnr_onnx_vs_torch"]
    assert parity["fp16"]["max_abs_diff"] > 0 and parity["int8"]["psnr"] > 0  # really other graphs
    image = sorted((photos / "any_class").glob("*.png"))[0]
    outputs = {}
    for precision in ("fp32", "fp16"):
        done = cli("predict", tmp_path / "pkg", image, "--precision", precision, "--out", tmp_path / precision)
        assert done.returncode == 0, done.stderr
        outputs[precision] = load_image_any(tmp_path / precision / image.name).astype(int)
    assert outputs["fp16"].shape == outputs["fp32"].shape and np.abs(outputs["fp16"] - outputs["fp32"]).mean() < 1


def test_a_failing_fp16_check_refuses_the_export_and_writes_nothing(dncnn_run, tmp_path, monkeypatch):
    from pixelforge.tasks.denoise import export as denoise_export

    monkeypatch.setattr(denoise_export, "FP16_MAX_PSNR_DROP", -1.0)  # fp16 would have to gain a dB: never
    with pytest.raises(pixelforge.PixelforgeError, match=r"export refused: fp16 parity failed \(PSNR .* allowed -1 dB"):
        pixelforge.export(dncnn_run, tmp_path / "pkg", fp16=True)
    with pytest.raises(pixelforge.PixelforgeError, match=r"export refused: int8 parity failed .*--max-int8-drop"):
        pixelforge.export(dncnn_run, tmp_path / "pkg", int8=True, max_int8_drop=-100.0)
    assert not (tmp_path / "pkg").exists() and not list(tmp_path.glob(".pkg*"))


def test_the_web_page_gets_noisy_and_denoised_with_their_psnr(dncnn_run, tmp_path):
    import base64
    import io

    from fastapi.testclient import TestClient

    from pixelforge.deploy.runtime.registry import load_runtime
    from pixelforge.deploy.serve.server import ServerSettings, create_app

    package = pixelforge.export(dncnn_run, tmp_path / "pkg")
    client = TestClient(create_app(ServerSettings(str(package)), load_runtime(package)))
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()[:50, :70]).save(buffer, format="PNG")
    answer = client.post("/v1/predict", files={"file": ("a.png", buffer.getvalue(), "image/png")}).json()
    prediction = answer["predictions"][0]
    assert answer["task"] == "denoise" and prediction["noise"] == "gaussian:25"
    assert 19 < prediction["psnr_noisy"] < 22 and prediction["psnr"] > 0
    for key in ("noisy_png", "denoised_png"):
        assert Image.open(io.BytesIO(base64.b64decode(prediction[key]))).size == (70, 50)


def test_a_grey_model_denoises_a_colour_photo_channel_by_channel_in_the_run_and_the_package(photos, tmp_path):
    """Through luminance, `--channels 1` returned a colour photo grey (R = G = B) under its RGB name."""
    from pixelforge.deploy.runtime.registry import load_runtime
    from pixelforge.tasks.denoise.evaluate import denoise_array, load_denoise_run

    run = pixelforge.train(str(photos), task="denoise", model="dncnn", depth=3, features=8, channels=1,
                           out=str(tmp_path / "grey"), **TINY).run_dir
    colour = data.coffee()[100:137, 200:245]
    grey_run = load_denoise_run(run)
    expected = np.concatenate([denoise_array(grey_run, colour[..., c:c + 1]) for c in range(3)], axis=-1)
    out = denoise_array(grey_run, colour)
    assert out.shape == colour.shape and np.array_equal(out, expected) and not np.array_equal(out[..., 0], out[..., 2])
    package = load_runtime(pixelforge.export(run, tmp_path / "pkg"))
    assert np.abs(package.denoise(colour).astype(int) - out).max() <= 1  # ONNX vs torch: one 8-bit step at most


@pytest.mark.slow
def test_unet_on_the_pretrained_encoder_trains_two_steps_in_grayscale(photos, tmp_path):
    result = pixelforge.train(str(photos), task="denoise", model="unet", channels=1, out=str(tmp_path / "unet"), **TINY)
    rows = rd.read_metrics(result.run_dir / "metrics.csv")
    assert len(rows) == 1 and np.isfinite(rows[0]["train_loss"])
    from pixelforge.tasks.denoise.evaluate import denoise_array, load_denoise_run

    run = load_denoise_run(result.run_dir)
    out = denoise_array(run, data.coffee()[:37, :45])  # not a multiple of 32: padded and cropped back
    assert out.shape == (37, 45, 3) and out.dtype == np.uint8  # a colour image stays colour through a grey model


def test_the_run_s_model_card_states_its_psnr_and_ssim_and_its_one_noise_model(dncnn_run):
    card, m = card_and_metrics(dncnn_run)
    check_common_sections(dncnn_run, card)
    assert row("**this model**", fmt(m["psnr"], 2), fmt(m["ssim"])) in card
    assert row("noisy input", fmt(m["psnr_noisy"], 2), fmt(m["ssim_noisy"])) in card
    assert all(row(name, fmt(b["psnr"], 2), fmt(b["ssim"])) in card for name, b in m["baselines"].items())
    assert f"one synthetic noise model, `{m['noise']}`" in card


def test_a_run_without_a_card_gets_one_written_into_its_package(dncnn_run, tmp_path):
    import shutil

    run = shutil.copytree(dncnn_run, tmp_path / "old-run")  # as trained before denoising runs had cards
    (run / "model_card.md").unlink()
    package = pixelforge.export(run, tmp_path / "pkg")
    check_package_card(package, run)
    m = rd.read_json(run / "eval-val" / "metrics.json")  # the report's evaluation, the one a fresh card reads
    assert row("**this model**", fmt(m["psnr"], 2), fmt(m["ssim"])) in (package / "model_card.md").read_text()
    assert not (run / "model_card.md").exists()  # export writes into the package, not the run
