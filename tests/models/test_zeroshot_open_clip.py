"""`pixelforge zeroshot` with a CLIP loaded through open_clip: a tiny randomly initialised open_clip model saved
locally gives exactly open_clip's own encode_image/encode_text answer; prompt ensembling is the renormalised mean
of normalised text embeddings; a hub model without local weights fails at once, without touching the network."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch
from PIL import Image

open_clip = pytest.importorskip("open_clip")

# A ViT CLIP small enough for a test: open_clip builds any config dict of its model_configs/ format.
TINY_CONFIG = {"embed_dim": 16,
               "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
               "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
LABELS = ["ant", "bee", "red circle", "blue square"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """(config json, weights file, images): a random tiny CLIP saved as a user would save a checkpoint."""
    root = tmp_path_factory.mktemp("tinyclip")
    config = root / "tiny-test-clip.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-test-clip")
    weights = root / "tiny.pt"
    torch.save(model.state_dict(), weights)
    rng = np.random.default_rng(0)
    images = []
    for k in range(8):  # noise of different brightness, colour and contrast: different embeddings
        path = root / f"img{k}.png"
        low, high = sorted(rng.integers(0, 256, 2))
        pixels = rng.integers(low, high + 1, (40 + 4 * k, 48, 3)) * rng.uniform(0.2, 1.0, 3)
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        images.append(path)
    return config, weights, images


def _zeroshot_json(args) -> list[dict]:
    from typer.testing import CliRunner

    from pixelforge.cli import app

    done = CliRunner().invoke(app, ["zeroshot", *map(str, args), "--json"])
    assert done.exit_code == 0, done.output
    return json.loads(done.output)


def test_zeroshot_equals_open_clips_own_cosine_argmax(tiny_clip):
    config, weights, images = tiny_clip
    results = _zeroshot_json([*images, "--clip", config, "--clip-weights", weights, "--labels", ",".join(LABELS),
                              "--templates", "none", "--top-k", "4"])

    model, _, preprocess = open_clip.create_model_and_transforms("tiny-test-clip", pretrained=str(weights))
    model.eval()
    tokenizer = open_clip.get_tokenizer("tiny-test-clip")
    with torch.no_grad():
        text = model.encode_text(tokenizer(LABELS), normalize=True)
        image = model.encode_image(torch.stack([preprocess(Image.open(p).convert("RGB")) for p in images]),
                                   normalize=True)
    probs = (model.logit_scale.exp() * image @ text.T).softmax(-1)
    assert [r["label"] for r in results] == [LABELS[i] for i in probs.argmax(1).tolist()]
    assert [r["score"] for r in results] == pytest.approx(probs.max(1).values.tolist(), abs=1e-5)
    assert [[t["label"] for t in r["top_k"]] for r in results] == \
        [[LABELS[i] for i in row] for row in probs.argsort(1, descending=True).tolist()]
    # The images really are told apart: their scores differ (a random model's top label may well be the same).
    assert np.ptp([r["score"] for r in results]) > 1e-4


def test_an_open_clip_local_dir_gives_the_same_labels(tiny_clip, tmp_path):
    config, weights, images = tiny_clip
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CONFIG}))
    (folder / "open_clip_pytorch_model.bin").write_bytes(weights.read_bytes())
    args = [*images[:3], "--labels", ",".join(LABELS), "--templates", "none"]
    from_dir = _zeroshot_json([*args, "--clip", f"local-dir:{folder}"])
    from_file = _zeroshot_json([*args, "--clip", config, "--clip-weights", weights])
    assert [r["top_k"] for r in from_dir] == [r["top_k"] for r in from_file]


def test_prompt_ensembling_is_the_mean_of_normalised_embeddings(tiny_clip):
    from pixelforge.models.open_clip_hub import load_open_clip

    config, weights, _ = tiny_clip
    zs = load_open_clip(str(config), str(weights))
    templates = zs.templates  # "a photo of a {}." and open_clip's ImageNet subset
    assert len(templates) == 8 and templates[0] == "a photo of a {}."
    got = zs.class_embeddings(LABELS, templates)
    with torch.no_grad():
        per_template = torch.stack([torch.nn.functional.normalize(
            zs.model.encode_text(zs.tokenize([t.format(label) for t in templates])), dim=-1) for label in LABELS])
    mean = per_template.mean(1)
    expected = (mean / mean.norm(dim=-1, keepdim=True)).T
    assert torch.allclose(got, expected, atol=1e-6)
    single = zs.class_embeddings(LABELS, templates[:1])
    assert not torch.allclose(got, single, atol=1e-3)  # the ensemble is not just its first prompt


def test_hub_model_without_local_weights_fails_at_once_without_network(tmp_path, monkeypatch):
    import huggingface_hub
    import open_clip.pretrained

    from pixelforge.errors import PixelforgeError
    from pixelforge.models.open_clip_hub import load_open_clip

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path))
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", refuse)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", refuse)
    with pytest.raises(PixelforgeError) as error:
        load_open_clip("ViT-B-32", None)
    message = str(error.value)
    assert attempts == [] and "\n" not in message
    assert "timm/vit_base_patch32_clip_224.openai" in message and "--clip-weights FILE" in message


def test_template_files_and_labels_are_checked_with_one_line_errors(tmp_path):
    from pixelforge.errors import PixelforgeError
    from pixelforge.models.prompts import parse_labels, read_templates

    good = tmp_path / "good.txt"
    good.write_text("# prompts\na photo of a {}.\n\na drawing of a {}.\n")
    assert read_templates(str(good), ["x {}"]) == ["a photo of a {}.", "a drawing of a {}."]
    assert read_templates("none", ["x {}"]) == ["{}"] and read_templates("default", ["x {}"]) == ["x {}"]
    bad = tmp_path / "bad.txt"
    bad.write_text("a photo of a {}.\na photo\n")
    for call in (lambda: read_templates(str(bad), []), lambda: read_templates(str(tmp_path / "missing.txt"), []),
                 lambda: parse_labels("ant"), lambda: parse_labels("ant,bee,ant")):
        with pytest.raises(PixelforgeError) as error:
            call()
        assert "\n" not in str(error.value)
    assert parse_labels(" ant , bee ,") == ["ant", "bee"]


def test_a_quoted_label_may_hold_a_comma_and_a_repeated_label_is_named():
    from pixelforge.errors import PixelforgeError
    from pixelforge.models.prompts import parse_labels

    # was '"red' and 'ripe apple"'
    assert parse_labels('"red, ripe apple", pear,蜂') == ["red, ripe apple", "pear", "蜂"]
    assert parse_labels("it's a dog,5\" nail") == ["it's a dog", '5" nail']  # quotes inside a name stay in it
    with pytest.raises(PixelforgeError, match="'ant' given twice"):
        parse_labels("ant, bee ,ant")


def test_a_folder_of_images_is_listed_as_the_data_readers_list_it(tmp_path):
    from PIL import Image

    from pixelforge.commands.zeroshot import image_files

    for name in ("a.JPG", "b.gif", "c.jfif", ".AppleDouble/a.JPG", "._a.JPG", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / name, format="GIF" if name == "b.gif" else "JPEG")
    assert image_files([tmp_path]) == [tmp_path / "a.JPG", tmp_path / "b.gif", tmp_path / "c.jfif"]


def test_a_weights_file_that_is_not_a_checkpoint_is_one_line_naming_it(tiny_clip, tmp_path):
    """A corrupt download failed inside torch.load's unpickler: a traceback advising weights_only=False."""
    from pixelforge.errors import PixelforgeError
    from pixelforge.models.open_clip_hub import load_open_clip

    config, _, _ = tiny_clip
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(PixelforgeError, match=r"junk\.pt: not a PyTorch or safetensors weights file") as error:
        load_open_clip(str(config), str(junk))
    assert "\n" not in str(error.value)


def test_an_unreadable_image_is_reported_the_others_labelled_and_the_exit_code_is_1(tiny_clip, tmp_path):
    """As `predict` and `fewshot`: a script must be able to tell that an image was left out."""
    from typer.testing import CliRunner

    from pixelforge.cli import app

    config, weights, images = tiny_clip
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    done = CliRunner().invoke(app, ["zeroshot", str(images[0]), str(broken), "--labels", "ant,bee", "--clip",
                                    str(config), "--clip-weights", str(weights), "--json"])
    assert done.exit_code == 1, done.output
    answers = json.loads(done.output)
    assert answers[0]["label"] in ("ant", "bee") and answers[1]["path"] == str(broken) and "error" in answers[1]
