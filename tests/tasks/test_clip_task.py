"""`--task clip` on a tiny built-in captions set: a 2-step training, evaluate's zero-shot and retrieval metrics, and
`pixelforge zeroshot --run` agreeing with the trained model's own image and text embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import pixelforge
from pixelforge.data.captions.shapes import write_shapes_captions
from pixelforge.tasks.common.card import fmt
from tests.card_checks import card_and_metrics, check_common_sections, check_package_card, row

pytest.importorskip("open_clip")
pytestmark = pytest.mark.xdist_group("clip")
TINY = dict(task="clip", weights="none", img_size=32, epochs=1, batch_size=12, embed_dim=16, text_width=16,
            text_heads=2, text_layers=1, max_caption_words=12, quiet=True)


@pytest.fixture(scope="module")
def clip_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("clipcaptions")
    write_shapes_captions(root, seed=3, splits=(("train", 24), ("val", 8), ("test", 12)))
    return root


@pytest.fixture(scope="module")
def clip_run(clip_data, tmp_path_factory):
    return pixelforge.train(str(clip_data), out=str(tmp_path_factory.mktemp("runs") / "clip"), **TINY).run_dir


def test_two_training_steps_write_a_run_that_evaluates_zero_shot(clip_run):
    from pixelforge.runs import folder as rd

    rows = rd.read_metrics(clip_run / "metrics.csv")
    assert len(rows) == 1 and {"val_recall1", "val_loss", "train_logit_scale"} <= set(rows[0])
    assert 0.0 <= rows[0]["val_recall1"] <= 1.0
    summary = json.loads((clip_run / "summary.json").read_text())
    assert summary["monitor"] == "val_recall1" and summary["path"] == "cached-features"

    metrics = pixelforge.evaluate(clip_run).metrics
    assert metrics["split"] == "test" and metrics["num_images"] == 12
    # 5 colours x 4 shapes of the dataset's objects; every single-object test image is a held-out pair.
    assert metrics["zeroshot_labels"] == 20 and metrics["chance"] == 0.05
    assert metrics["zeroshot_images"] == metrics["held_out_images"] > 0
    for key in ("zeroshot_accuracy", "zeroshot_accuracy_single_template", "zeroshot_accuracy_bare_label",
                "recall1_image_to_text", "recall5_text_to_image"):
        assert 0.0 <= metrics[key] <= 1.0
    assert (clip_run / "eval-test" / "zeroshot_gallery.png").is_file()


def test_zeroshot_with_a_trained_run_ranks_by_its_own_embeddings(clip_run, clip_data):
    from typer.testing import CliRunner

    from pixelforge.cli import app
    from pixelforge.data.captions.tokenizer import Tokenizer
    from pixelforge.runs import folder as rd
    from pixelforge.tasks.clip.run import load_clip_run
    from pixelforge.tasks.clip.run import encode_captions

    labels = ["green triangle", "red circle", "blue square"]
    images = sorted((clip_data / "images" / "test").glob("*.png"))[:4]
    done = CliRunner().invoke(app, ["zeroshot", *map(str, images), "--run", str(clip_run), "--labels",
                                    ",".join(labels), "--json"])
    assert done.exit_code == 0, done.output
    results = json.loads(done.output)

    # By hand: the checkpoint's encoders, the run's tokenizer and templates, the mean of normalised prompts.
    zs, cfg = load_clip_run(clip_run)
    state = rd.load_checkpoint(clip_run / "checkpoints" / "best.ckpt")
    tokenizer = Tokenizer(state["vocab"])
    model = zs.model
    with torch.no_grad():
        classes = []
        for label in labels:
            tokens = encode_captions(tokenizer, [t.format(label) for t in zs.templates], 14)
            mean = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1).mean(0)
            classes.append(mean / mean.norm())
        from PIL import Image

        pixels = torch.stack([zs.preprocess(Image.open(p).convert("RGB")) for p in images])
        cosine = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1) @ torch.stack(classes).T
    assert [r["label"] for r in results] == [labels[i] for i in cosine.argmax(1).tolist()]
    assert all(r["top_k"][0]["score"] >= r["top_k"][-1]["score"] for r in results)


def test_zeroshot_refuses_a_run_of_another_task(tmp_path, clip_data):
    from typer.testing import CliRunner

    from pixelforge.cli import app
    from pixelforge.errors import PixelforgeError

    (tmp_path / "config.yaml").write_text("task: classify\ndata: somewhere\n")
    (tmp_path / "classes.json").write_text("[]")
    image = next((clip_data / "images" / "test").glob("*.png"))
    done = CliRunner().invoke(app, ["zeroshot", str(image), "--run", str(tmp_path), "--labels", "a,b"])
    assert isinstance(done.exception, PixelforgeError) and "needs a run of --task clip" in str(done.exception)


@pytest.mark.parametrize("labels", ["zebra,giraffe,red circle", "red circle,Red Circle"])
def test_zeroshot_refuses_labels_the_run_cannot_tell_apart(labels, clip_run, clip_data):
    """Words outside the run's vocabulary are all <unk>, and its tokenizer lower-cases: the two labels tied on every
    image and the first was printed as the answer."""
    from typer.testing import CliRunner

    from pixelforge.cli import app
    from pixelforge.errors import PixelforgeError

    image = next((clip_data / "images" / "test").glob("*.png"))
    done = CliRunner().invoke(app, ["zeroshot", str(image), "--run", str(clip_run), "--labels", labels])
    first, second = labels.split(",")[:2]
    assert isinstance(done.exception, PixelforgeError)
    assert f"--labels: {first!r} and {second!r} give this model the same text" in str(done.exception)


@pytest.fixture(scope="module")
def clip_package(clip_run, tmp_path_factory):
    package = pixelforge.export(clip_run, tmp_path_factory.mktemp("packages") / "pkg")
    return getattr(package, "package_dir", package)


def test_fp16_and_int8_packages_label_like_pytorch_through_the_cli_and_a_drift_is_refused(
        clip_run, clip_data, tmp_path, cli, monkeypatch):
    from pixelforge.deploy.runtime.registry import load_runtime
    from pixelforge.tasks.clip import export as clip_export

    package = tmp_path / "pkg"
    result = cli("export", clip_run, "--fp16", "--int8", "--calibration-images", "12", "--out", package)
    assert result.returncode == 0, result.stderr  # the 32 px image tower's "same" pads stay integers under int8
    manifest = json.loads((package / "package.json").read_text())
    assert manifest["default_precision"] == "int8"
    assert manifest["text_models"] == {"fp32": "text_encoder.onnx", "int8": "text_encoder.int8.onnx",
                                       "fp16": "text_encoder.fp16.onnx"}
    parity = json.loads((package / "parity.json").read_text())
    for precision in ("fp16", "int8"):
        report = parity[precision]
        assert report["passed"] and report["label_agreement"] >= 0.95 and report["images"] == 8
        assert 0.99 <= min(report["min_image_cosine"], report["min_label_cosine"]) < 1
    images = sorted((clip_data / "images" / "test").glob("*.png"))[:6]
    labels = "green triangle,red circle,blue square"
    done = cli("zeroshot", *images, "--labels", labels, "--run", package, "--json")  # the default: int8
    assert done.returncode == 0, done.stderr
    fp32 = load_runtime(package, "fp32")
    expected = fp32.scores([Image.open(i) for i in images], labels.split(",")).argmax(1)
    got = [labels.split(",").index(row["label"]) for row in json.loads(done.stdout)]
    assert np.mean(np.array(got) == expected) >= 0.8  # 6 images: a near tie may flip one
    fp16 = load_runtime(package, "fp16")
    assert fp16.text.get_inputs()[0].name == "tokens" and fp16.precision == "fp16"
    cosine = (fp16.class_embeddings(labels.split(",")) * fp32.class_embeddings(labels.split(","))).sum(0)
    assert cosine.min() >= 0.99
    monkeypatch.setattr(clip_export, "MIN_COSINE", 1.01)  # unreachable: the int8 check must refuse
    with pytest.raises(pixelforge.PixelforgeError, match=r"export refused: int8 parity failed \(zero-shot labels "
                                                         r"agree .* need 95 % and 1.01"):
        pixelforge.export(clip_run, tmp_path / "refused", int8=True, calibration_images=12)
    assert not (tmp_path / "refused").exists()


def test_exported_package_labels_like_the_run_without_torch(clip_run, clip_data, clip_package):
    import subprocess
    import sys

    package = clip_package
    check_package_card(package, clip_run)
    parity = json.loads((package / "parity.json").read_text())
    assert parity["passed"] and parity["images"] == 8 and parity["max_abs_embedding_diff"] < 1e-4

    images = sorted((clip_data / "images" / "test").glob("*.png"))[:4]
    args = [*map(str, images), "--labels", "green triangle,red circle,blue square", "--json"]
    # The package path runs with torch made unimportable: ONNX Runtime, NumPy and PIL only.
    code = ("import sys; sys.modules['torch'] = None\n"
            "from pixelforge.commands.zeroshot import load_zero_shot_model, classify_images\n"
            "from pathlib import Path; import json\n"
            f"zs = load_zero_shot_model(Path({str(package)!r}), None, None)\n"
            f"print(json.dumps(classify_images(zs, [Path(p) for p in {list(map(str, images))!r}], "
            "['green triangle', 'red circle', 'blue square'], zs.templates, 3)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    from_package = json.loads(done.stdout)

    from typer.testing import CliRunner

    from pixelforge.cli import app

    from_run = json.loads(CliRunner().invoke(app, ["zeroshot", *args[:-1], "--run", str(clip_run), "--json"]).output)
    assert [r["label"] for r in from_package] == [r["label"] for r in from_run]
    assert [r["score"] for r in from_package] == pytest.approx([r["score"] for r in from_run], abs=1e-4)


def test_serve_refuses_a_clip_package_in_one_line_pointing_to_zeroshot(cli, clip_package):
    """An upload carries no class names: every upload, a clean photo too, got a 500 from the server."""
    import socket

    from pixelforge.deploy.serve.server import ServerSettings, create_app
    from pixelforge.errors import PixelforgeError

    expected = (f"{clip_package}: a clip package labels images by class names given with them, which `pixelforge "
                f"serve` does not take: pixelforge zeroshot IMAGES --run {clip_package} --labels \"a,b\"")
    with pytest.raises(PixelforgeError) as refused:
        create_app(ServerSettings(str(clip_package)))
    assert str(refused.value) == expected
    with socket.socket() as held:  # were the package served, the command would stop at the port instead
        held.bind(("127.0.0.1", 0))
        done = cli("serve", clip_package, "--port", held.getsockname()[1], timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == f"error: {expected}"


def test_zeroshot_names_a_heic_folder_and_an_unreadable_file_as_predict_does(cli, clip_run, clip_data, tmp_path):
    """A folder of iPhone photos was "no images found", and a bad file's line lacked predict's "error:"."""
    iphone = tmp_path / "iphone"
    iphone.mkdir()
    (iphone / "IMG_0001.HEIC").write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    labels = ["--run", clip_run, "--labels", "red circle,blue square"]
    done = cli("zeroshot", iphone, *labels)
    assert done.returncode == 2 and done.stderr.strip() == (
        f"error: {iphone}: holds 1 image(s) in formats pixelforge does not read (.heic, e.g. IMG_0001.HEIC) and none "
        "it reads; convert them to JPEG or PNG")

    notes = tmp_path / "notes.jpg"
    notes.write_text("hello, not an image")
    image = next((clip_data / "images" / "test").glob("*.png"))
    done = cli("zeroshot", notes, image, *labels)
    assert done.returncode == 1 and done.stdout.startswith(f"{image}: ")
    assert done.stderr.strip() == f"{notes}: error: not an image format PIL can identify; the file is corrupt or not an image"


def test_zeroshot_of_only_unreadable_files_is_predict_s_one_line(cli, clip_package, tmp_path):
    """Every file unreadable printed a line each and exit code 1, as if something had been labelled."""
    (tmp_path / "notes.jpg").write_text("hello, not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    done = cli("zeroshot", tmp_path, "--run", clip_package, "--labels", "red circle,blue square", "--json")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (f"error: none of the 2 file(s) given could be predicted: {tmp_path / 'empty.jpg'}: "
                                   "the file is empty (0 bytes); delete it or replace it with the real image (and 1 "
                                   "more failed)")


def test_zeroshot_warns_of_label_words_the_run_never_saw(clip_run, clip_data):
    """One unknown label among known ones is scored on its prompts' other words alone; it was silent."""
    from typer.testing import CliRunner

    from pixelforge.cli import app

    image = next((clip_data / "images" / "test").glob("*.png"))
    done = CliRunner().invoke(app, ["zeroshot", str(image), "--run", str(clip_run), "--labels",
                                    "red circle,zebra hexagon"])
    assert done.exit_code == 0, done.output
    assert ("warning: --labels: words this model never saw in training, read as <unk>: 'zebra hexagon': zebra, "
            "hexagon") in done.stderr
    known = CliRunner().invoke(app, ["zeroshot", str(image), "--run", str(clip_run), "--labels",
                                     "red circle,blue square"])
    assert known.exit_code == 0 and "warning" not in known.stderr


def test_evaluate_leaves_out_the_training_images_unless_asked(clip_run, clip_data, tmp_path):
    """Only a file of the training split or `--split train` can hold the run's training images: evaluation splits
    other data by the run's seed. They scored silently; now they are left out and counted, as caption's are."""
    from pixelforge.tasks.registry import get_task
    from tests.held_out_checks import check_training_split_is_left_out_unless_asked

    everything = check_training_split_is_left_out_unless_asked(clip_run, clip_data, tmp_path)
    own = pixelforge.evaluate(clip_run, split="train", out=tmp_path / "own").metrics  # asked for by name: scored
    assert own["num_images"] == everything["num_images"] and own["excluded_training_images"] is None
    assert "left out" not in get_task("clip").format_metrics(own)


def test_the_run_s_model_card_states_its_zero_shot_accuracy_and_recall(clip_run):
    card, m = card_and_metrics(clip_run)
    check_common_sections(clip_run, card)
    assert row("zero-shot accuracy, prompt ensemble", fmt(m["zeroshot_accuracy"])) in card
    assert row("zero-shot accuracy, bare label", fmt(m["zeroshot_accuracy_bare_label"])) in card
    assert row("chance", fmt(m["chance"])) in card
    assert row("recall@1 image → text", fmt(m["recall1_image_to_text"])) in card


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["linear", "full"])
def test_two_process_ddp_trains_both_image_paths(clip_data, tmp_path, strategy):
    """`--devices 2` ended in Fabric's refusal of `encode_text` called beside the DDP-wrapped forward: the step now
    makes one `model(images, tokens)` call, for cached features (linear) and images (full) alike."""
    from pixelforge.runs import folder as rd

    result = pixelforge.train(str(clip_data), out=str(tmp_path / "ddp"), **{**TINY, "epochs": 2, "devices": 2,
                                                                          "accelerator": "cpu", "strategy": strategy})
    rows = rd.read_metrics(result.run_dir / "metrics.csv")
    assert [row["epoch"] for row in rows] == [1, 2] and all(row["train_loss"] > 0 for row in rows)


def _contrastive_case():
    """Eight image-text pairs of 5-number inputs through two linear projections: (inputs, texts, projections)."""
    generator = torch.Generator().manual_seed(0)
    images, texts = torch.randn(8, 5, generator=generator), torch.randn(8, 5, generator=generator)
    projections = [torch.randn(5, 4, generator=generator), torch.randn(5, 4, generator=generator)]
    return images, texts, projections


def _loss_and_gradients(loss_fn, images, texts, projections):
    """The training loss of these pairs and its gradients with respect to both projections."""
    from torch.nn import functional as F

    weights = [w.clone().requires_grad_(True) for w in projections]
    loss = loss_fn(F.normalize(images @ weights[0], dim=1), F.normalize(texts @ weights[1], dim=1), torch.tensor(3.0))
    loss.backward()
    return loss.detach(), [w.grad for w in weights]


def _ddp_half(rank: int, world_size: int, init: str, out: str):
    """One of two gloo processes: its half of the pairs, and the loss and gradients averaged as DDP averages them."""
    import torch.distributed as dist

    from pixelforge.tasks.clip.task import training_loss

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world_size)
    try:
        images, texts, projections = _contrastive_case()
        half = slice(rank * 4, rank * 4 + 4)
        loss, grads = _loss_and_gradients(training_loss(rank, world_size), images[half], texts[half], projections)
        for tensor in (loss, *grads):
            dist.all_reduce(tensor)
            tensor /= world_size
        if rank == 0:
            torch.save({"loss": loss, "grads": grads}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_under_ddp_the_loss_gathers_every_process_s_features_as_one_process_over_the_whole_batch(tmp_path):
    """Two processes of 4 pairs each scored each batch against its own 4 texts only (ClipLoss with world_size 1):
    a different objective from one process with 8. With open_clip's gathered features (local loss, gradients
    through the gather), the processes' mean loss and DDP's averaged gradients are the 8-pair ones."""
    import torch.multiprocessing as mp

    from pixelforge.tasks.clip.task import training_loss

    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_half, args=(2, f"file://{tmp_path / 'rendezvous'}", str(out)), nprocs=2)
    ddp = torch.load(out)
    loss, grads = _loss_and_gradients(training_loss(0, 1), *_contrastive_case())
    assert torch.allclose(ddp["loss"], loss, atol=1e-6)
    for got, expected in zip(ddp["grads"], grads):
        assert torch.allclose(got, expected, atol=1e-6)
