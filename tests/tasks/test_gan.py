"""`--task gan`: training on the engine's manual-optimization path with two named optimizers, the EMA generator
surviving an interrupted-and-resumed run, FID/KID equal to torchmetrics' own, the real-vs-real floor on disjoint
sets, `generate` reproducible by seed, and the ONNX export's parity with the torch-free runtime and server."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import pixelforge
from pixelforge.engine.hooks import Hook
from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd
from pixelforge.tasks.common.card import fmt
from tests.card_checks import card_and_metrics, check_common_sections, check_package_card, row

# One worker runs the module (loadgroup), so its GAN run is trained once: the slow-first order in conftest.py
# would otherwise split its tests over both workers.
pytestmark = pytest.mark.xdist_group("gan")

# native_size 8: the generator draws 8 px and enlarges them, so training, resume, generate and export all run
# through the fixed bicubic enlargement (a generator drawing at the image size is the same network without it).
# The discriminator judges at the native 8 px too (its default --d-size). aux_weight 1: the default 0.2 teaches the
# auxiliary classifier too slowly for the first test to see it learn in 12 steps.
# accelerator cpu: the resume test asks for bit-identical weights, which CUDA's embedding backward (atomic adds in any
# order) does not give; tests/test_cuda.py trains the GAN on a GPU.
TINY = dict(task="gan", conditional=True, img_size=16, native_size=8, width=8, latent_dim=8, epochs=2, batch_size=8,
            fid_n=16, eval_n=16, aux_weight=1.0, quiet=True, accelerator="cpu")


@pytest.fixture(scope="module")
def two_class_folder(tmp_path_factory):
    """24 bars and 24 rings of 16 px, in class folders: tiny, and distinct enough for a judge to tell apart."""
    root = tmp_path_factory.mktemp("gan-data")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    for name in ("bar", "ring"):
        (root / name).mkdir()
        for i in range(24):
            cx, cy = rng.uniform(6, 10, 2)
            if name == "bar":
                shape = np.abs(xx - cx) < 2
            else:
                shape = np.abs(np.hypot(xx - cx, yy - cy) - 4) < 1.2
            pixels = np.clip(shape * 220 + rng.normal(0, 10, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def gan_run(two_class_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("gan-runs") / "run"
    return pixelforge.train(str(two_class_folder), out=str(out), **TINY).run_dir


class InterruptAt(Hook):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, ctx, outputs):
        if ctx.state.global_step == self.step:
            raise KeyboardInterrupt


def test_a_gan_trains_two_named_optimizers_and_picks_best_ckpt_by_the_lowest_fid(gan_run):
    rows = rd.read_metrics(gan_run / "metrics.csv")
    assert len(rows) == 2
    assert {"train_loss_d", "train_loss_g", "train_aux_d", "val_fid_lite0", "val_kid_lite0", "lr_generator",
            "lr_discriminator"} <= set(rows[0])
    # the conditional run's discriminator carries the auxiliary classifier, and it is learning the two classes (at
    # 8 px and lr 2e-4 it starts near 0.85 and needs more than these 12 steps to get below ln 2)
    assert rows[-1]["train_aux_d"] < rows[0]["train_aux_d"] - 0.03
    last = rd.load_checkpoint(gan_run / "checkpoints" / "last.ckpt")
    assert set(last["optimizers"]) == {"generator", "discriminator"}
    assert all(last["optimizers"][name]["state"] for name in ("generator", "discriminator"))  # both stepped
    best = min(rows, key=lambda r: r["val_fid_lite0"])
    assert rd.read_json(gan_run / "summary.json")["best_epoch"] == best["epoch"]
    # The EMA generator is part of the model state (so best.ckpt, generate and export use it) and has moved.
    assert last["model"]["discriminator.classifier.weight"].shape[0] == 2
    ema = {k: v for k, v in last["model"].items() if k.startswith("ema.")}
    assert ema and any(not torch.equal(v, last["model"]["generator." + k[4:]]) for k, v in ema.items()
                       if v.is_floating_point())
    assert sorted(p.name for p in (gan_run / "samples").glob("*.png")) == ["epoch_001.png", "epoch_002.png"]
    assert (gan_run / "samples.gif").is_file() and (gan_run / "report.html").is_file()


@pytest.mark.slow
def test_the_ema_generator_survives_an_interrupted_and_resumed_run(gan_run, two_class_folder, tmp_path):
    cut = tmp_path / "cut"
    with pytest.raises(PixelforgeError, match="resume with"):
        pixelforge.train(str(two_class_folder), out=str(cut), callbacks=[InterruptAt(7)], **TINY)  # mid epoch 2
    saved = rd.load_checkpoint(cut / "checkpoints" / "last.ckpt")
    assert (saved["loop"]["epoch"], saved["loop"]["batch"]) == (1, 1)  # 6 batches an epoch
    pixelforge.train(resume=cut, quiet=True)
    expected, got = (rd.load_checkpoint(r / "checkpoints" / "last.ckpt")["model"] for r in (gan_run, cut))
    for key in [k for k in expected if k.startswith("ema.")]:
        assert torch.equal(expected[key], got[key]), key


def test_a_native_size_generator_enlarges_its_drawing_exactly_as_pil_enlarged_the_digits():
    from sklearn.datasets import load_digits

    from pixelforge.tasks.gan.models import FixedUpsample, Generator

    # the built-in digits' own pipeline: scikit-learn's 8x8 pixels enlarged to 32 px with PIL's bicubic filter
    small = (load_digits().images[:100] * (255 / 16)).astype(np.uint8)
    pil = np.stack([np.asarray(Image.fromarray(a).resize((32, 32), Image.BICUBIC)) for a in small]).astype(int)
    enlarged = FixedUpsample(8, 32)(torch.from_numpy(small).float()[:, None] / 127.5 - 1)
    ours = ((enlarged[:, 0] + 1) * 127.5).round().numpy().astype(int)
    assert np.abs(ours - pil).max() <= 1  # float vs PIL's 8-bit arithmetic between the two passes
    assert (ours != pil).mean() < 0.2 and np.abs(ours - pil).sum() > 0  # ...and nowhere else

    torch.manual_seed(0)
    generator = Generator(16, 1, 32, width=8, num_classes=3, native_size=8).eval()
    z, labels = torch.randn(4, 16), torch.tensor([0, 1, 2, 0])
    drawing = generator.draw(z, labels)
    assert drawing.shape == (4, 1, 8, 8)
    assert torch.equal(generator(z, labels), FixedUpsample(8, 32)(drawing))
    assert Generator(16, 1, 32, width=8, native_size=None)(z).shape == (4, 1, 32, 32)


def test_the_native_size_is_the_digits_own_unless_given_and_a_bad_one_is_refused():
    from pixelforge.tasks.gan.config import GanConfig
    from pixelforge.tasks.gan.setup import check_config, native_size

    assert native_size(GanConfig(data="digits", img_size=32)) == 8  # scikit-learn's 8x8 digits, written at 32 px
    assert native_size(GanConfig(data="shapes", img_size=64)) == 64
    assert native_size(GanConfig(data="digits", img_size=32, native_size=16)) == 16
    with pytest.raises(PixelforgeError, match="--native-size 12"):
        check_config(GanConfig(data="digits", img_size=32, native_size=12))
    with pytest.raises(PixelforgeError, match="--native-size 64"):
        check_config(GanConfig(data="digits", img_size=32, native_size=64))


def test_the_discriminator_judges_at_its_size_through_torchvisions_antialiased_resize():
    from sklearn.datasets import load_digits
    from torchvision.transforms.v2 import functional as TF

    from pixelforge.tasks.gan.config import GanConfig
    from pixelforge.tasks.gan.models import Discriminator, FixedResize
    from pixelforge.tasks.gan.setup import check_config, judge_size, native_size

    small = torch.from_numpy(load_digits().images[:16]).float()[:, None] / 8 - 1
    real = TF.resize(small, [32, 32], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    expected = TF.resize(real, [8, 8], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    assert torch.allclose(FixedResize(32, 8)(real), expected, atol=1e-5)
    # real and generated images alike go through it: the discriminator's body only ever sees 8 px
    torch.manual_seed(0)
    critic = Discriminator(1, 32, width=8, num_classes=10, aux_classifier=True, judge_size=8).eval()
    labels = torch.arange(16) % 10
    seen = []
    hook = critic.body.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    critic(real, labels)
    hook.remove()
    assert seen == [(16, 1, 8, 8)]
    # ...and it judges a 32 px image as an 8 px discriminator with the same weights judges torchvision's resize of it
    native = Discriminator(1, 8, width=8, num_classes=10, aux_classifier=True).eval()
    native.load_state_dict(critic.state_dict())
    assert torch.allclose(critic(real, labels), native(expected, labels), atol=1e-4)
    cfg = GanConfig(data="digits", img_size=32)
    assert judge_size(cfg, native_size(cfg)) == 8  # by default the generator's drawing size
    assert judge_size(GanConfig(data="digits", img_size=32, d_size=32), 8) == 32
    with pytest.raises(PixelforgeError, match="--d-size 12"):
        check_config(GanConfig(data="digits", img_size=32, d_size=12))


def test_the_mode_seeking_term_charges_a_generator_for_alike_samples_of_different_noise():
    from pixelforge.tasks.gan.losses import mode_seeking

    z = torch.randn(8, 16)
    same = torch.zeros(8, 1, 8, 8, requires_grad=True)
    apart = torch.randn(8, 1, 8, 8)
    assert mode_seeking(same, z) > 100 * mode_seeking(apart, z)
    # its gradient pushes the two samples of a pair apart
    pair = torch.stack([torch.full((1, 8, 8), 0.1), torch.full((1, 8, 8), -0.1)]).requires_grad_(True)
    mode_seeking(pair, z[:2]).backward()
    assert pair.grad[0].sum() < 0 < pair.grad[1].sum()
    # a batch of one has no pair: no term (before: the mean of nothing, NaN, in the generator's loss)
    assert float(mode_seeking(same[:1], z[:1])) == 0.0


def test_fid_and_kid_equal_torchmetrics_with_the_same_extractor():
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    from pixelforge.tasks.gan.fid import Lite0Features, extract, fid_kid

    generator = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8, generator=generator)
    fake = (real.float() * 0.6 + 40).to(torch.uint8)
    extractor = Lite0Features()
    ours = fid_kid(extract(extractor, real, batch_size=8), extract(extractor, fake, batch_size=8), seed=5)

    fid = FrechetInceptionDistance(feature=extractor)
    kid = KernelInceptionDistance(feature=extractor, subsets=50, subset_size=10)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    torch.manual_seed(5)
    kid_mean, _ = kid.compute()
    assert ours["fid"] == pytest.approx(float(fid.compute()), rel=1e-4)
    assert ours["kid"] == pytest.approx(float(kid_mean), rel=1e-4, abs=1e-6)
    assert ours["fid"] > 1.0  # the two sets differ: a metric stuck at 0 would pass the equalities


def test_the_real_floor_compares_two_disjoint_real_sets_of_the_same_n(two_class_folder):
    from pixelforge.tasks.gan.data import disjoint_real_sets, read_source

    source = read_source(str(two_class_folder))
    a, b = disjoint_real_sets(source, 20, seed=0)
    assert len(a) == len(b) == 20 and not {s.path for s in a} & {s.path for s in b}
    a, b = disjoint_real_sets(source, 500, seed=0)  # capped at half the 48 images
    assert len(a) == len(b) == 24 and not {s.path for s in a} & {s.path for s in b}
    # The run's unreadable files ("PATH: why", summary.json) are left out before drawing: with 40 of the 48 broken,
    # both sets are drawn from the 8 that decode, not cut to fewer than 2 after the draw.
    broken = [f"{s.path}: cannot decode image" for s in source.samples[:40]]
    a, b = disjoint_real_sets(source, 20, seed=0, unreadable=broken)
    assert len(a) == len(b) == 4 and {s.path for s in a + b} == {s.path for s in source.samples[40:]}


def test_an_unconditional_gan_learns_a_plain_folder_of_images_and_is_scored_on_another(two_class_folder, gan_run,
                                                                                      tmp_path):
    import shutil

    from pixelforge.tasks.gan.evaluate import evaluate_gan

    flat = tmp_path / "faces"  # images directly in the folder, as GAN datasets usually come
    flat.mkdir()
    for image in sorted(two_class_folder.rglob("*.png")):
        shutil.copy(image, flat / f"{image.parent.name}-{image.name}")
    with pytest.raises(PixelforgeError, match="drop --conditional"):
        pixelforge.train(str(flat), out=str(tmp_path / "refused"), **TINY)
    assert not (tmp_path / "refused").exists()
    run = pixelforge.train(str(flat), out=str(tmp_path / "flat"), **{**TINY, "conditional": False, "epochs": 1}).run_dir
    assert json.loads((run / "classes.json").read_text()) == ["images"]
    assert len(list((run / "samples").glob("*.png"))) >= 1
    # Scored against a folder it did not learn from, and a class-folder run against the plain folder.
    assert evaluate_gan(run, data=str(two_class_folder), n=8).metrics["n"] == 8
    assert evaluate_gan(gan_run, data=str(flat), n=8).metrics["fid_lite0"] > 0


def test_real_images_are_read_upright_16_bit_rescaled_and_a_broken_file_is_skipped_by_name(tmp_path):
    """As classification reads photos (load_rgb): PIL's plain convert() made a 16-bit scan pure white, kept an EXIF-
    rotated photo sideways, and a truncated JPEG stopped training with a traceback."""
    import io

    from pixelforge.data.sources import Sample
    from pixelforge.tasks.gan.data import decode, grey

    ramp = np.tile(np.linspace(0, 4000, 32), (32, 1)).astype(np.uint16)  # a 12-bit scan in a 16-bit PNG
    Image.fromarray(ramp).save(tmp_path / "scan.png")
    wide = Image.new("L", (32, 16), 0)
    wide.paste(255, (0, 0, 16, 16))  # white on the left as stored; on the top once turned upright
    exif = Image.Exif()
    exif[0x0112] = 6
    wide.save(tmp_path / "phone.jpg", exif=exif.tobytes())
    buffer = io.BytesIO()
    Image.new("L", (32, 32), 90).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:200])
    samples = [Sample(tmp_path / name, "images") for name in ("scan.png", "phone.jpg", "cut.jpg")]
    assert grey(samples)
    real = decode(samples, ["images"], 16, 1)
    scan, phone = ((real.images + 1) * 127.5)[:, 0]
    assert len(real) == 2 and real.unreadable[0].startswith(str(tmp_path / "cut.jpg"))
    assert scan.min() < 20 and scan.max() > 235  # the whole range, not clipped to white
    assert phone[:4].mean() > 200 and phone[-4:].mean() < 50  # upright: the white half on top


def test_the_report_names_a_training_image_it_skipped(gan_run, tmp_path):
    import shutil

    from pixelforge.tasks.gan.report import write_gan_report

    run = shutil.copytree(gan_run, tmp_path / "run")
    summary = rd.read_json(run / "summary.json")
    rd.write_json(run / "summary.json", {**summary, "unreadable_images": ["/data/bar/x.png: not an image"]})
    write_gan_report(run)
    assert "Skipped images</h2><ul><li>/data/bar/x.png: not an image</li>" in (run / "report.html").read_text()


def test_a_conditional_gan_refuses_a_class_whose_every_image_is_broken(two_class_folder, tmp_path):
    import shutil

    shutil.copytree(two_class_folder, tmp_path / "data")
    (tmp_path / "data" / "wasp").mkdir()
    for i in range(3):
        (tmp_path / "data" / "wasp" / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(40))
    with pytest.raises(PixelforgeError, match=r"class 'wasp' has no readable training image \(.*wasp/0.jpg"):
        pixelforge.train(str(tmp_path / "data"), out=str(tmp_path / "run"), **TINY)


def test_a_gan_on_fewer_than_four_images_is_refused_before_a_run_folder_exists(tmp_path):
    flat = tmp_path / "few"
    flat.mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16), (80 * i, 0, 0)).save(flat / f"{i}.png")
    with pytest.raises(PixelforgeError, match="3 image.*at least 4"):
        pixelforge.train(str(flat), out=str(tmp_path / "run"), **{**TINY, "conditional": False})
    assert not (tmp_path / "run").exists()
    # Four files, one of them broken: found only when the images are decoded, still before a model trains for an
    # epoch whose report then fails, and the run folder made for it is removed.
    (flat / "3.png").write_bytes(b"not an image")
    with pytest.raises(PixelforgeError, match=r"3 readable training image\(s\) \(.*3.png: .*at least 4"):
        pixelforge.train(str(flat), out=str(tmp_path / "run"), **{**TINY, "conditional": False})
    assert not (tmp_path / "run").exists()


def test_a_classifier_run_of_another_task_is_named_as_such(tmp_path):
    """`evaluate GAN --classifier DENOISE_RUN` said "--classifier's classes [] differ from the GAN's [...]"."""
    from pixelforge.errors import PixelforgeError
    from pixelforge.tasks.gan.judge import run_judge

    run = tmp_path / "denoise-run"
    run.mkdir()
    (run / "config.yaml").write_text("task: denoise\ndata: photos\n")
    (run / "classes.json").write_text("[]")
    with pytest.raises(PixelforgeError) as caught:
        run_judge(run, ["bar", "ring"])
    assert str(caught.value).startswith(f"{run}: not a classification run (it is a denoise run); --classifier needs")
    assert "differ" not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.slow
def test_evaluate_reports_fid_kid_floor_n_and_the_judges_class_scores(gan_run, cli):
    result = cli("evaluate", gan_run, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert {"fid_lite0", "kid_lite0", "fid_real_floor", "n", "conditional_accuracy", "class_coverage"} <= set(metrics)
    assert metrics["n"] == 16 and metrics["fid_real_floor"] > 0 and "Lite0" in metrics["extractor"]
    assert metrics["task"] == "gan"  # as every task's evaluate --json names it (no split: FID reads every image)
    assert 0 <= metrics["conditional_accuracy"] <= 1 and metrics["class_coverage"] in (0, 0.5, 1)
    assert (gan_run / "judge" / "classifier.pt").is_file()  # trained once on the real images, cached


def test_training_the_judge_leaves_the_caller_s_random_state_and_gives_the_same_judge(gan_run, tmp_path):
    """Training the judge (first `evaluate` of a run) called torch.manual_seed(0) on the global generator: a user's
    script found its random stream reset; and the judge's initial weights came from whatever state the caller had."""
    import shutil

    from pixelforge.tasks.gan.data import read_source
    from pixelforge.tasks.gan.judge import own_judge
    from pixelforge.tasks.gan.run import load_gan_run

    weights = []
    for name, seed in (("a", 123), ("b", 7)):
        copy = shutil.copytree(gan_run, tmp_path / name)
        shutil.rmtree(copy / "judge", ignore_errors=True)
        run = load_gan_run(copy)
        source = read_source(run.config.data, run.conditional)
        torch.manual_seed(seed)
        before = torch.get_rng_state()
        judge = own_judge(run, source)
        assert torch.equal(torch.get_rng_state(), before)
        weights.append(judge.model.state_dict())
    assert all(torch.equal(tensor, weights[1][key]) for key, tensor in weights[0].items())


def test_generate_is_reproducible_by_seed_and_writes_the_class_at_the_data_size(gan_run, tmp_path, cli):
    from pixelforge.tasks.gan.generate import generate_to_folder

    first = generate_to_folder(gan_run, out=tmp_path / "a", n=6, class_name="ring", seed=3)
    again = generate_to_folder(gan_run, out=tmp_path / "b", n=6, class_name="ring", seed=3)
    other = generate_to_folder(gan_run, out=tmp_path / "c", n=6, class_name="ring", seed=4)
    pixels = lambda files: [np.asarray(Image.open(f)) for f in files]  # noqa: E731
    assert all(np.array_equal(x, y) for x, y in zip(pixels(first["files"]), pixels(again["files"])))
    assert not all(np.array_equal(x, y) for x, y in zip(pixels(first["files"]), pixels(other["files"])))
    assert first["classes"] == ["ring"] * 6 and all(f.endswith("_ring.png") for f in first["files"])
    assert Image.open(first["files"][0]).size == (16, 16)
    with pytest.raises(PixelforgeError, match="not empty"):
        generate_to_folder(gan_run, out=tmp_path / "a", n=2)
    (tmp_path / "mine.png").write_bytes(b"the user's own file")  # a file, not a folder: was a NotADirectoryError
    with pytest.raises(PixelforgeError, match="mine.png: exists and is a file"):
        generate_to_folder(gan_run, out=tmp_path / "mine.png", n=2)
    result = cli("generate", gan_run, "--n", "4", "--interpolate", "5", "--out", tmp_path / "lerp")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "lerp").glob("0*.png"))) == 5
    mistaken = cli("predict", gan_run, first["files"][0])  # a GAN generates: the line names the command that does
    assert mistaken.returncode == 2 and f"pixelforge generate {gan_run}" in mistaken.stderr


def test_int8_generator_is_checked_in_psnr_and_the_cli_generates_with_it_by_default(gan_run, tmp_path, cli,
                                                                                     monkeypatch):
    from pixelforge.deploy.export import precision
    from pixelforge.deploy.runtime.registry import load_runtime

    package = tmp_path / "pkg"
    result = cli("export", gan_run, "--int8", "--calibration-images", "64", "--parity-images", "16", "--out", package)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((package / "package.json").read_text())
    assert manifest["models"]["int8"] == "model.int8.onnx" and manifest["default_precision"] == "int8"
    assert manifest["export"]["calibration_images"] == 64
    parity = json.loads((package / "parity.json").read_text())["int8"]
    assert parity["passed"] and 30 <= parity["min_psnr_vs_torch"] < 100 and parity["images"] == 16
    generated = cli("generate", package, "--n", "2", "--class", "bar", "--seed", "1", "--out", tmp_path / "gen")
    assert generated.returncode == 0, generated.stderr  # the torch-free runtime, int8 (the package's default)
    int8 = [np.asarray(Image.open(f), np.float64) for f in sorted((tmp_path / "gen").glob("0*.png"))]
    fp32 = load_runtime(package, "fp32").generate(2, "bar", seed=1)["images"]
    assert len(int8) == 2 and all(precision.psnr_db(b / 255, a / 255) >= 30 for a, b in zip(int8, fp32))
    monkeypatch.setattr(precision, "INT8_MIN_PSNR", 1000.0)  # unreachable: the int8 check must refuse
    with pytest.raises(pixelforge.PixelforgeError, match="export refused: int8 parity failed"):
        pixelforge.export(gan_run, tmp_path / "refused", int8=True, parity_images=8, calibration_images=32)
    assert not (tmp_path / "refused").exists()


def test_fp16_generator_is_checked_in_psnr_and_generates_under_precision(gan_run, tmp_path, monkeypatch):
    from pixelforge.deploy.export import precision
    from pixelforge.deploy.runtime.registry import load_runtime

    package = pixelforge.export(gan_run, tmp_path / "pkg", fp16=True, parity_images=8)
    assert json.loads((package / "package.json").read_text())["models"]["fp16"] == "model.fp16.onnx"
    parity = json.loads((package / "parity.json").read_text())
    assert parity["fp16"]["passed"] and parity["fp16"]["min_psnr_vs_torch"] >= 40 and parity["fp16"]["max_abs_diff"] > 0
    fp16, fp32 = (load_runtime(package, p).generate(2, "bar", seed=1)["images"] for p in ("fp16", "fp32"))
    assert np.abs(fp16[0].astype(int) - fp32[0].astype(int)).mean() < 2
    monkeypatch.setattr(precision, "FP16_MIN_PSNR", 1000.0)  # unreachable: the fp16 check must refuse
    with pytest.raises(pixelforge.PixelforgeError, match="export refused: fp16 parity failed"):
        pixelforge.export(gan_run, tmp_path / "refused", fp16=True, parity_images=8)
    assert not (tmp_path / "refused").exists()


@pytest.mark.slow
def test_export_parity_and_the_torch_free_runtime_and_server_generate(gan_run, tmp_path):
    from fastapi.testclient import TestClient

    from pixelforge.deploy.runtime.registry import load_runtime
    from pixelforge.deploy.serve.server import ServerSettings, create_app

    package = pixelforge.export(gan_run, tmp_path / "pkg")
    check_package_card(package, gan_run)
    parity = json.loads((package / "parity.json").read_text())
    assert parity["passed"] and parity["max_uint8_diff"] <= 1
    runtime = load_runtime(package)
    a, b = runtime.generate(4, "bar", seed=1), runtime.generate(4, "bar", seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a["images"], b["images"])) and a["classes"] == ["bar"] * 4
    assert a["images"][0].shape == (16, 16) and a["images"][0].dtype == np.uint8
    with TestClient(create_app(ServerSettings(str(package)), runtime)) as client:
        body = client.post("/v1/generate?n=3&class=ring&seed=2").json()
        assert len(body["images_png"]) == 3 and body["classes"] == ["ring"] * 3
        assert client.post("/v1/generate?class=cat").status_code == 422
        assert "generate" in client.get("/").text
    # `pixelforge generate PACKAGE`: the same torch-free generator writes the PNGs and the grid.
    code = ("import sys\nfrom pixelforge.cli import main\n"
            f"sys.argv = ['pixelforge', 'generate', {str(package)!r}, '--n', '3', '--class', 'bar', '--seed', '1', "
            f"'--out', {str(tmp_path / 'from-package')!r}]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print('TORCH_LOADED', 'torch' in sys.modules, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "TORCH_LOADED False" in result.stderr, result.stderr
    written = sorted((tmp_path / "from-package").glob("000*_bar.png"))
    assert len(written) == 3 and (tmp_path / "from-package" / "grid.png").is_file()
    assert np.array_equal(np.asarray(Image.open(written[0])), a["images"][0])  # seed 1, class bar: the same image
    from pixelforge.tasks.gan.generate import generate_to_folder

    # The package's grid was 32 px samples at their own size (338 x 66 for 20 digits), the run's enlarged 3x.
    from_run = generate_to_folder(gan_run, out=tmp_path / "from-run", n=3, class_name="bar", seed=1)
    assert Image.open(tmp_path / "from-package" / "grid.png").size == Image.open(from_run["grid"]).size
    # and grey like the samples: the run's was RGB (make_grid's three copies of the channel), the package's grey
    assert Image.open(tmp_path / "from-package" / "grid.png").mode == Image.open(from_run["grid"]).mode == "L"


def test_the_run_s_model_card_states_fid_coverage_and_conditional_accuracy(gan_run):
    card, m = card_and_metrics(gan_run)
    check_common_sections(gan_run, card)
    assert row("fid_lite0", fmt(m["fid_lite0"]), f"real-vs-real floor {fmt(m['fid_real_floor'])} "
               f"({fmt(m['fid_over_floor'], 2)}x)") in card
    assert row("class coverage", fmt(m["class_coverage"]), "share of classes the judge finds among the samples") in card
    assert row("conditional accuracy", fmt(m["conditional_accuracy"]),
               f"samples judged as the class asked for ({m['samples_per_class']} per class)") in card
    assert "synthetic" in card


def test_bf16_mixed_precision_trains_through_the_discriminators_resize():
    """`--precision bf16-mixed` ended in a traceback: torch has no antialiased bicubic resize for bf16, the dtype
    the generator's images have under autocast on their way to the discriminator."""
    from pixelforge.tasks.gan.models import GANModel

    torch.manual_seed(0)
    model = GANModel(8, 1, 16, width=8, num_classes=2, aux_classifier=True, native_size=8, judge_size=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = model("generate", torch.randn(4, 8), torch.tensor([0, 1, 0, 1]))
        scores, logits = model("discriminate+classify", fake, torch.tensor([0, 1, 0, 1]))
    (scores.float().mean() + logits.float().mean()).backward()
    assert fake.shape == (4, 1, 16, 16) and torch.isfinite(scores.float()).all()
    assert model.generator.project[0].weight.grad is not None  # the generator's gradient came back through it


@pytest.mark.slow
def test_two_processes_train_each_player_under_its_own_ddp_wrapper_and_resume(gan_run, two_class_folder, tmp_path):
    """`--devices 2` was refused: one DDP wrapper over both players saw half of its parameters unused in each step.
    The generator and the discriminator are now set up by Fabric one by one; two gloo processes train an epoch,
    the run resumes for a second, and the run folder has the single-process layout."""
    run = tmp_path / "ddp"
    pixelforge.train(str(two_class_folder), out=str(run), **{**TINY, "epochs": 1, "devices": 2})
    pixelforge.train(resume=run, epochs=2, quiet=True)  # a constant learning rate: a run may be resumed for more
    rows = rd.read_metrics(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(np.isfinite(r[k]) for r in rows for k in ("train_loss_d", "train_loss_g", "val_fid_lite0"))
    last, single = (rd.load_checkpoint(r / "checkpoints" / "last.ckpt") for r in (run, gan_run))
    assert last["model"].keys() == single["model"].keys()  # generate, evaluate and export read it as before
    assert all(last["optimizers"][name]["state"] for name in ("generator", "discriminator"))  # both stepped
    assert (run / "report.html").is_file() and (run / "samples" / "epoch_002.png").is_file()
