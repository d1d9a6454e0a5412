"""Captioning data: the COCO-captions and CSV readers, the data check's counts, the tokenizer's round trip through
the run folder, and the built-in set's held-out colour-shape pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelforge.data.captions.check import check_captions
from pixelforge.data.captions.reader import read_captions
from pixelforge.data.captions.shapes import HELD_OUT, attribute_pairs, write_shapes_captions
from pixelforge.data.captions.tokenizer import Tokenizer
from pixelforge.errors import PixelforgeError


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(path)


def test_coco_captions_are_read_with_problems_counted(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        _image(tmp_path / "images" / name)
    coco = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"},
                       {"id": 3, "file_name": "c.png"}, {"id": 4, "file_name": "gone.png"}],
            "annotations": [{"image_id": 1, "caption": "A red circle."}, {"image_id": 1, "caption": "one red circle"},
                            {"image_id": 2, "caption": "  "}, {"image_id": 9, "caption": "no such image"},
                            {"image_id": 2, "caption": " ".join(["word"] * 30)}]}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.json").write_text(json.dumps(coco))
    (tmp_path / "annotations" / "val.json").write_text(json.dumps(
        {"images": [{"id": 10, "file_name": "a.png"}], "annotations": [{"image_id": 10, "caption": "a blue zebra"}]}))

    source = read_captions(tmp_path)
    assert {i.id: len(i.captions) for i in source.images} == {1: 2, 2: 2, 3: 0, 10: 1}
    report = check_captions(str(tmp_path)).to_json()
    assert report["images"] == 4 and report["captions"] == 5
    assert report["images_without_captions"] == [str(tmp_path / "images" / "c.png")]
    assert report["captions_without_images"] == [f"{tmp_path / 'annotations' / 'train.json'}: image_id 9"]
    assert len(report["missing_files"]) == 1 and len(report["empty_captions"]) == 1
    assert len(report["overlong_captions"]) == 1
    # train words: a red circle one word (5) + 4 specials; val "a blue zebra": 2 of 3 words unknown
    assert report["vocabulary_size"] == 9 and report["val_oov_rate"] == pytest.approx(2 / 3)
    assert report["problem_count"] == 5 and report["error_count"] == 4  # an overlong caption is only cut: a warning


def test_a_folder_holding_the_one_file_coco_captions_json_is_read(tmp_path):
    _image(tmp_path / "images" / "a b.PNG")
    (tmp_path / "captions.json").write_text(json.dumps(
        {"images": [{"id": 7, "file_name": "a b.PNG"}], "annotations": [{"image_id": 7, "caption": "A red circle."}]}))
    assert [(i.id, i.captions) for i in read_captions(tmp_path).images] == [(7, ["A red circle."])]
    with pytest.raises(PixelforgeError, match="captions.json"):
        read_captions(tmp_path / "images")  # the message names every layout it looked for


def test_coco_s_own_layout_captions_train2017_json_with_images_in_train2017_is_read(tmp_path):
    for split, image_id in (("train2017", 1), ("val2017", 2)):
        _image(tmp_path / split / f"{image_id:012d}.jpg")
        (tmp_path / "annotations").mkdir(exist_ok=True)
        (tmp_path / "annotations" / f"captions_{split}.json").write_text(json.dumps(
            {"images": [{"id": image_id, "file_name": f"{image_id:012d}.jpg"}],
             "annotations": [{"image_id": image_id, "caption": "A red circle."}]}))
    source = read_captions(tmp_path)  # was: no annotations/train.json in this folder
    assert [(i.id, i.split, Path(i.path).parent.name) for i in source.images] == [(1, "train", "train2017"),
                                                                                  (2, "val", "val2017")]
    one = read_captions(tmp_path / "annotations" / "captions_val2017.json")  # was: image files not found
    assert [i.id for i in one.images] == [2] and not one.missing_files


def test_captions_csv_groups_rows_by_image_and_rejects_bad_splits(tmp_path):
    _image(tmp_path / "x.png")
    (tmp_path / "captions.csv").write_text("path,caption,split\nx.png,a cat,train\nx.png,one cat,train\n")
    source = read_captions(tmp_path)
    assert [(i.split, i.captions) for i in source.images] == [("train", ["a cat", "one cat"])]
    (tmp_path / "y.png").write_bytes((tmp_path / "x.png").read_bytes())
    (tmp_path / "cased.csv").write_text("path,caption,split\nx.png,a cat,Train\nx.png,one cat,TRAIN \n"
                                        "y.png,a dog,validation\n")  # as the classification CSV reader takes them
    assert [i.split for i in read_captions(tmp_path / "cased.csv").images] == ["train", "val"]
    (tmp_path / "bad.csv").write_text("path,caption,split\nx.png,a cat,holdout\n")
    with pytest.raises(PixelforgeError, match="bad.csv: split 'holdout'"):
        read_captions(tmp_path / "bad.csv")


def test_captions_csv_written_on_windows_with_backslash_paths_is_read(tmp_path):
    _image(tmp_path / "photos" / "x.png")
    (tmp_path / "captions.csv").write_text("path,caption\r\nphotos\\x.png,a cat\r\n")
    source = read_captions(tmp_path / "captions.csv")  # was: photos\x.png missing
    assert [Path(i.path) for i in source.images] == [tmp_path / "photos" / "x.png"] and not source.missing_files
    (tmp_path / "coco.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "photos\\x.png"}],
                                                    "annotations": [{"image_id": 1, "caption": "a cat"}]}))
    source = read_captions(tmp_path / "coco.json")  # a COCO file from a Windows tool
    assert [Path(i.path) for i in source.images] == [tmp_path / "photos" / "x.png"] and not source.missing_files


def test_captions_csv_from_excel_or_in_latin_1(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark (the header then read as '\\ufeffpath'), and a Latin-1 file
    is not UTF-8: the first is read, quoted commas and all, the second refused in one line, as label CSVs are."""
    _image(tmp_path / "x.png")
    (tmp_path / "excel.csv").write_bytes('path,caption\nx.png,"a cat, très petit"\n'.encode("utf-8-sig"))
    assert read_captions(tmp_path / "excel.csv").images[0].captions == ["a cat, très petit"]
    (tmp_path / "latin.csv").write_bytes("path,caption\nx.png,un café\n".encode("latin-1"))
    with pytest.raises(PixelforgeError, match=r"latin\.csv: not UTF-8 text \(byte 0xe9 at offset 25\)"):
        read_captions(tmp_path / "latin.csv")


def test_training_leaves_empty_captions_out(tmp_path):
    """An empty caption would train the decoder to stop at once and score as an empty BLEU reference; data check
    lists it, training leaves it out (an image left with none is not trained on)."""
    from types import SimpleNamespace

    from pixelforge.tasks.common.captions import read_caption_source

    for name in ("a", "b", "c"):
        _image(tmp_path / f"{name}.png")
    (tmp_path / "captions.csv").write_text("path,caption,split\na.png,a cat,train\na.png,,train\nb.png, ... ,train\n"
                                           "c.png,a dog,val\n")
    cfg = SimpleNamespace(data=str(tmp_path), val_fraction=0.2, test_fraction=0.0, seed=0)
    source = read_caption_source(cfg)
    assert [(i.path.split("/")[-1], i.captions) for i in source.images] == [("a.png", ["a cat"]), ("b.png", []),
                                                                          ("c.png", ["a dog"])]
    assert [i.id for i in source.split("train")] == [1]


def test_the_data_check_names_a_corrupt_image_that_training_would_stop_at(tmp_path):
    _image(tmp_path / "a.png")
    (tmp_path / "b.png").write_text("not an image")
    (tmp_path / "captions.csv").write_text("path,caption\na.png,a cat\nb.png,a dog\n")
    report = check_captions(str(tmp_path))
    assert report.unreadable_images == [f"{tmp_path / 'b.png'}: not an image format PIL can identify; the file is "
                                        f"corrupt or not an image"]
    assert report.problem_count == 1


def test_training_says_which_captions_it_leaves_out_for_a_missing_image(tmp_path, caplog):
    """A mistyped path in captions.csv was dropped without a word: training went on with fewer images."""
    from types import SimpleNamespace

    from pixelforge.tasks.common.captions import read_caption_source

    for name in ("a", "c"):
        _image(tmp_path / f"{name}.png")
    (tmp_path / "captions.csv").write_text("path,caption,split\na.png,a cat,train\ntypo.png,a bird,train\n"
                                           "c.png,a dog,val\n")
    cfg = SimpleNamespace(data=str(tmp_path), val_fraction=0.2, test_fraction=0.0, seed=0)
    with caplog.at_level("WARNING", logger="pixelforge"):
        read_caption_source(cfg)
    assert f"skipping the captions of 1 image file(s) not found (first: {tmp_path / 'typo.png'};" in caplog.text


def test_the_tokenizer_round_trips_through_its_file(tmp_path):
    tok = Tokenizer.fit(["A small red circle.", "a large red square", "a zebra"], min_count=2)
    assert tok.vocab[:4] == ["<pad>", "<start>", "<end>", "<unk>"] and tok.vocab[4:] == ["a", "red"]
    ids = tok.encode("a RED zebra!")
    assert ids[0] == tok.start and ids[-1] == tok.end and ids[3] == tok.unk
    tok.save(tmp_path / "tokenizer.json")
    again = Tokenizer.load(tmp_path / "tokenizer.json")
    assert again.vocab == tok.vocab and again.decode(ids) == "a red <unk>"
    assert again.decode([*ids, tok.index["red"]]) == "a red <unk>"  # nothing after <end>


def test_words_in_any_script_are_words_not_empty_captions():
    from pixelforge.data.captions.tokenizer import words

    assert words("Un CAFÉ-crème, naïve!") == ["un", "café", "crème", "naïve"]  # not "caf", "cr", "me", "na", "ve"
    assert words("Красный квадрат.") == ["красный", "квадрат"]  # was [], so the caption counted as empty
    assert words("a_b 3 cats") == ["a", "b", "3", "cats"]  # underscore still splits, as before
    assert words("un cafe\u0301") == ["un", "café"]  # a decomposed accent is the same word as a composed one
    assert Tokenizer.fit(["красный квадрат", "синий квадрат"]).vocab[4:] == ["квадрат", "красный", "синий"]


def test_the_built_in_test_split_holds_only_unseen_colour_shape_pairs(tmp_path):
    write_shapes_captions(tmp_path, seed=1, splits=(("train", 40), ("test", 20)))
    for split, unseen_expected in (("train", False), ("test", True)):
        data = json.loads((tmp_path / "annotations" / f"{split}.json").read_text())
        for image in data["images"]:
            pairs = {(o["colour"], o["shape"]) for o in image["objects"]}
            assert bool(pairs & HELD_OUT) is unseen_expected
            captions = [a["caption"] for a in data["annotations"] if a["image_id"] == image["id"]]
            assert 3 <= len(captions) <= 5
            assert all(attribute_pairs(c) == sorted(pairs_list(image)) for c in captions)
            xs = [o["x"] for o in image["objects"]]
            assert xs == sorted(xs)  # named left to right


def pairs_list(image):
    return [(o["colour"], o["shape"]) for o in image["objects"]]


def test_the_extra_training_scenes_add_crowded_scenes_and_leave_val_and_test_as_they_were(tmp_path):
    splits = (("train", 30), ("val", 6), ("test", 6))
    write_shapes_captions(tmp_path / "plain", seed=2, splits=splits, extra_train=0)
    write_shapes_captions(tmp_path / "more", seed=2, splits=splits)
    for split in ("val", "test"):
        assert ((tmp_path / "plain" / "annotations" / f"{split}.json").read_bytes()
                == (tmp_path / "more" / "annotations" / f"{split}.json").read_bytes())
        first = json.loads((tmp_path / "plain" / "annotations" / f"{split}.json").read_text())["images"][0]
        assert ((tmp_path / "plain" / "images" / first["file_name"]).read_bytes()
                == (tmp_path / "more" / "images" / first["file_name"]).read_bytes())
    train = json.loads((tmp_path / "more" / "annotations" / "train.json").read_text())["images"]
    extra = train[30:]
    assert len(extra) == 30 and all(2 <= len(i["objects"]) <= 3 for i in extra)
    assert sum(len(i["objects"]) == 3 for i in extra) >= 5  # the plain split's placement rarely fits three
    assert all((tmp_path / "more" / "images" / i["file_name"]).exists() for i in extra)
