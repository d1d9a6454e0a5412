"""`--task caption` end to end on a tiny built-in set: a 2-step training, evaluate (with and without a run),
predict, explain, and the ONNX package whose numpy beam search gives PyTorch's captions."""

from __future__ import annotations

import json

import pytest

import pixelforge
from pixelforge.data.captions.shapes import write_shapes_captions
from pixelforge.metrics.captions import corpus_bleu
from pixelforge.tasks.common.card import fmt
from tests.card_checks import card_and_metrics, check_common_sections, check_package_card, row
from tests.output_checks import check_run_and_package

pytestmark = pytest.mark.xdist_group("caption")
TINY = dict(task="caption", weights="none", img_size=64, epochs=1, batch_size=16, embed_dim=16, hidden_dim=32,
            attention_dim=16, max_caption_words=12, quiet=True)


@pytest.fixture(scope="module")
def caption_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("captions")
    write_shapes_captions(root, seed=3, splits=(("train", 8), ("val", 4), ("test", 4)))
    return root


@pytest.fixture(scope="module")
def caption_run(caption_data, tmp_path_factory):
    result = pixelforge.train(str(caption_data), out=str(tmp_path_factory.mktemp("runs") / "cap"), **TINY)
    return result.run_dir


def test_two_training_steps_write_a_run_that_evaluates_and_predicts(caption_run, caption_data):
    from pixelforge.runs import folder as rd

    rows = rd.read_metrics(caption_run / "metrics.csv")
    assert len(rows) == 1 and {"val_bleu4", "val_loss", "train_attention_penalty"} <= set(rows[0])
    assert 0.0 <= rows[0]["train_acc"] <= 1.0  # a batch mean (the engine weights it by count), not a hit count
    assert (caption_run / "tokenizer.json").is_file() and (caption_run / "report.html").is_file()
    assert "attention" in (caption_run / "report.html").read_text()

    result = pixelforge.evaluate(caption_run, beam=2)
    metrics = result.metrics
    assert metrics["split"] == "test" and metrics["num_images"] == 4 and metrics["beam"] == 2
    assert all(0.0 <= metrics[f"bleu{n}"] <= 100.0 for n in range(1, 5)) and "attribute_match" in metrics
    results = json.loads((result.out_dir / "results.json").read_text())
    assert len(results) == 4 and (result.out_dir / "attention.png").is_file()

    # The COCO results file scores the same from the --gt/--predictions path.
    from pixelforge.api.score_files import score_files

    again = score_files("caption", caption_data / "annotations" / "test.json", result.out_dir / "results.json")
    assert again["bleu4"] == pytest.approx(metrics["bleu4"]) and again["num_images"] == 4
    assert again.get("cider") == metrics.get("cider")  # CIDEr-D on both paths where pycocoevalcap is installed

    images = sorted((caption_data / "images" / "test").glob("*.png"))[:2]
    predictions = pixelforge.predict(caption_run, images, beam=1)
    assert [set(p) for p in predictions] == [{"path", "task", "caption", "tokens", "score"}] * 2
    assert all(p["caption"] == " ".join(p["tokens"]) for p in predictions)

    # `pixelforge explain` on a caption run: one attention strip per image, same caption as predict.
    from pixelforge.explain.commands import explain

    explain(caption_run, [str(images[0])], method="gradcam", target=None, out=caption_run / "why", faithfulness=False,
            steps=2)
    assert (caption_run / "why" / f"{images[0].stem}.png").is_file()


def test_predict_on_a_folder_without_images_is_the_package_s_one_line(cli, caption_run, tmp_path):
    """The run printed nothing and exited 0, where the package (and every other task) says so."""
    (tmp_path / "notes.txt").write_text("no photos here")
    done = cli("predict", caption_run, tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == f"error: no images found in {tmp_path}"


def test_evaluate_leaves_out_the_training_images_unless_asked(caption_run, caption_data, tmp_path):
    from tests.held_out_checks import check_training_split_is_left_out_unless_asked

    check_training_split_is_left_out_unless_asked(caption_run, caption_data, tmp_path)


def test_evaluate_says_when_an_unreadable_image_was_left_out_of_its_metrics(caption_run, caption_data, tmp_path,
                                                                            capsys, monkeypatch):
    """Only --json listed the unreadable images: the printed BLEU silently covered fewer images than the split."""
    import shutil
    import sys

    from pixelforge.cli import main

    data = tmp_path / "data"
    shutil.copytree(caption_data, data)
    broken = sorted((data / "images" / "test").iterdir())[0]
    broken.write_text("not an image")
    monkeypatch.setattr(sys, "argv", ["pixelforge", "evaluate", str(caption_run), "--data", str(data),
                                      "--out", str(tmp_path / "eval")])
    main()
    err = capsys.readouterr().err
    assert f"warning: 1 unreadable image(s) left out of these metrics (first: {broken}: not an image" in err


def test_score_files_refuses_results_that_miss_images(caption_data, tmp_path):
    from pixelforge.api.score_files import score_files

    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"image_id": 13, "caption": "a red circle"}]))
    with pytest.raises(pixelforge.PixelforgeError, match="no caption for 3 of 4 images"):
        score_files("caption", caption_data / "annotations" / "test.json", results)


@pytest.mark.parametrize("option, message", [({"feature_stride": 4}, "--feature-stride 4: captioning attends"),
                                             ({"model": "simple_cnn"}, "--model simple_cnn: captioning needs a timm")])
def test_an_encoder_captioning_cannot_use_is_refused_before_any_work(caption_data, tmp_path, monkeypatch, option,
                                                                      message):
    """The encoder was checked while the model was built: after the data was read and the run folder announced."""
    from pixelforge.tasks.caption import CaptionTask

    def read_data(self, cfg):
        raise AssertionError("the data was read before the config was checked")

    monkeypatch.setattr(CaptionTask, "prepare_data", read_data)
    with pytest.raises(pixelforge.PixelforgeError, match=message):
        pixelforge.train(str(caption_data), out=str(tmp_path / "run"), **{**TINY, **option})
    assert list(tmp_path.iterdir()) == []



def test_export_gives_pytorch_s_captions_without_torch_and_serves_attention(caption_run, caption_data, tmp_path, cli):
    from PIL import Image

    from pixelforge.deploy.runtime.registry import load_runtime, predict_package

    pixelforge.export(caption_run, tmp_path / "pkg")
    check_package_card(tmp_path / "pkg", caption_run)
    parity = json.loads((tmp_path / "pkg" / "parity.json").read_text())
    assert parity["passed"] and parity["same_captions"] == parity["images"] == 4

    images = sorted((caption_data / "images" / "test").glob("*.png"))
    from_run = pixelforge.predict(caption_run, images)
    from_package = predict_package(tmp_path / "pkg", images)
    assert [p["caption"] for p in from_package] == [p["caption"] for p in from_run]
    check_run_and_package(cli, caption_run, tmp_path / "pkg", images[:1], tmp_path / "keys", "caption", None)

    runtime = load_runtime(tmp_path / "pkg")
    image = Image.open(images[0]).convert("RGB")
    answer = runtime.answer(image, runtime.predict_batch([image])[0])
    assert answer["task"] == "caption" and answer["caption"] == from_run[0]["caption"]
    assert len(answer["attention"]) == len(answer["tokens"]) and answer["grid"] == 8  # 64 px / stride 8 (the default)
    assert all(abs(sum(map(sum, grid)) - 1.0) < 1e-2 for grid in answer["attention"])


def test_fp16_and_int8_packages_caption_like_pytorch_through_the_cli_and_a_lower_bleu_is_refused(
        caption_run, caption_data, tmp_path, cli, monkeypatch):
    from pixelforge.tasks.caption import export as caption_export

    package = tmp_path / "pkg"
    result = cli("export", caption_run, "--fp16", "--int8", "--calibration-images", "8", "--out", package)
    assert result.returncode == 0, result.stderr
    assert "Could not find a CPU kernel" not in result.stderr  # timm's padding arithmetic stays fp32
    manifest = json.loads((package / "package.json").read_text())
    assert manifest["default_precision"] == "int8"
    assert manifest["models"] == {"fp32": "encoder.onnx", "int8": "encoder.int8.onnx", "fp16": "encoder.fp16.onnx"}
    assert manifest["decoder_models"] == {"fp32": "decoder_step.onnx", "int8": "decoder_step.int8.onnx",
                                          "fp16": "decoder_step.fp16.onnx"}
    parity = json.loads((package / "parity.json").read_text())
    for precision in ("fp16", "int8"):
        assert parity[precision]["passed"] and parity[precision]["bleu4_vs_torch"] >= 90
        assert parity[precision]["images"] == 4 and parity[precision]["max_abs_attention_diff"] > 0  # not fp32's
    images = sorted((caption_data / "images" / "test").glob("*.png"))
    from_run = [p["caption"] for p in pixelforge.predict(caption_run, images)]
    for precision in ("fp16", "int8"):  # the torch-free runtime, each precision's encoder and decoder step
        done = cli("predict", package, *images, "--precision", precision, "--json")
        assert done.returncode == 0, done.stderr
        captions = [p["caption"] for p in json.loads(done.stdout)]
        assert corpus_bleu(captions, [[c] for c in from_run])["bleu4"] >= 90
    monkeypatch.setattr(caption_export, "MIN_BLEU", 100.1)  # unreachable: the int8 check must refuse
    with pytest.raises(pixelforge.PixelforgeError, match=r"export refused: int8 parity failed \(BLEU-4 against "
                                                         r"PyTorch's captions 100.0, need 100.1"):
        pixelforge.export(caption_run, tmp_path / "refused", int8=True, calibration_images=8)
    assert not (tmp_path / "refused").exists()


@pytest.mark.slow
def test_an_export_whose_captions_differ_from_pytorch_is_refused(caption_run, tmp_path, monkeypatch):
    from pixelforge.deploy.runtime.caption import CaptionRuntime

    original = CaptionRuntime.caption

    def drifted(self, image, beam=None):
        answer = original(self, image, beam)
        return {**answer, "caption": answer["caption"] + " extra"}

    monkeypatch.setattr(CaptionRuntime, "caption", drifted)
    with pytest.raises(pixelforge.PixelforgeError, match="export refused: .* different captions for 4 of 4"):
        pixelforge.export(caption_run, tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()


def test_a_run_saved_before_the_round_five_attention_query_still_predicts(caption_run, caption_data, tmp_path):
    import shutil

    from pixelforge.runs import folder as rd

    old = tmp_path / "old"
    shutil.copytree(caption_run, old)
    state = rd.load_checkpoint(old / "checkpoints" / "best.ckpt")
    # Round four's checkpoints: the same decoder without the word's attention query (config.yaml does not name it).
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("decoder.att_word")}
    rd.save_checkpoint(state, old / "checkpoints" / "best.ckpt")
    images = sorted((caption_data / "images" / "test").glob("*.png"))[:1]
    assert pixelforge.predict(old, images)[0]["caption"]


def test_a_run_saved_before_the_round_three_decoder_still_predicts_and_a_misfit_fails_in_one_line(
        caption_run, caption_data, tmp_path):
    import shutil

    from pixelforge.tasks.config import load_config
    from pixelforge.models.captioner import build_captioner
    from pixelforge.runs import folder as rd

    old = tmp_path / "old"
    shutil.copytree(caption_run, old)
    state = rd.load_checkpoint(old / "checkpoints" / "best.ckpt")
    cfg = load_config(old / "config.yaml")
    # What round two saved: SAT's decoder (the LSTM and its word layer read the attended features), no format key.
    legacy = build_captioner(cfg.model, len(state["vocab"]), "none", cfg.embed_dim, cfg.hidden_dim,
                             cfg.attention_dim, cfg.decoder_dropout, cfg.feature_stride, cfg.context_logits,
                             "mean", "h+context", "context")
    del state["decoder_format"]
    state["model"] = legacy.state_dict()
    rd.save_checkpoint(state, old / "checkpoints" / "best.ckpt")
    images = sorted((caption_data / "images" / "test").glob("*.png"))[:1]
    assert pixelforge.predict(old, images)[0]["caption"]

    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("decoder.lstm")}
    rd.save_checkpoint(state, old / "checkpoints" / "best.ckpt")
    with pytest.raises(pixelforge.PixelforgeError, match="does not fit this version's caption model") as error:
        pixelforge.predict(old, images)
    assert "\n" not in str(error.value)  # the CLI prints it as its one line, exit 2


def test_the_run_s_model_card_states_bleu_cider_attribute_match_and_its_closed_vocabulary(caption_run):
    from pixelforge.runs import folder as rd

    card, m = card_and_metrics(caption_run)
    check_common_sections(caption_run, card)
    assert all(row(f"BLEU-{n}", fmt(m[f"bleu{n}"], 2)) in card for n in range(1, 5))
    assert row("CIDEr-D", fmt(m["cider"], 2)) in card and row("attribute match", fmt(m["attribute_match"])) in card
    words = len(rd.read_json(caption_run / "tokenizer.json")["vocab"])
    assert f"Closed vocabulary: it writes only the {words} words" in card
