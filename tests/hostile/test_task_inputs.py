"""Hostile inputs of the newer tasks' own files and options (compress, denoise, caption, zero-shot, fairness, style):
one line naming the file or option and the problem (exit 2), never a traceback; nothing a user made is overwritten.
Each case is decided before a model is loaded or trained, so the module stays within seconds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def _png(path, size=(16, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 128, np.uint8)).save(path)
    return path


@pytest.mark.parametrize("command", [
    ["compress", "RUN", "photo.png", "--out"],
    ["decompress", "RUN", "photo.pfc", "--out"],
    ["stylize", "photo.png", "photo.png", "--steps", "1", "--size", "16", "--out"],
    ["data", "preview", "photos", "--out"],
])
def test_an_out_inside_a_file_is_one_line_before_any_work(command, tmp_path, pixelforge_cli, monkeypatch):
    """`--out photo.png/x.png` (photo.png a file) was a FileExistsError traceback, for compress only after the
    encoding; now one line naming the file in the way, before the run is loaded or the image read."""
    monkeypatch.chdir(tmp_path)
    _png(tmp_path / "photos" / "a.png")
    _png(tmp_path / "photo.png").with_suffix(".pfc").write_bytes(b"\x89PFC")
    outcome = pixelforge_cli(*command, "photo.png/x.png")
    assert outcome.code == 2
    assert outcome.error_line == "error: photo.png/x.png: photo.png is a file, not a folder; choose an --out in a folder"


def test_compress_refuses_an_existing_out_before_it_encodes(tmp_path, pixelforge_cli):
    """The .pfc is never overwritten, and the refusal comes before the run is even read (RUN does not exist)."""
    taken = tmp_path / "taken.pfc"
    taken.write_bytes(b"mine")
    outcome = pixelforge_cli("compress", tmp_path / "no-run", _png(tmp_path / "photo.png"), "--out", taken)
    assert "already exists" in outcome.error_line and taken.read_bytes() == b"mine"


def test_compress_of_a_missing_image_says_the_image_does_not_exist(tmp_path, pixelforge_cli):
    """It said "check the path or the dataset's label file": compress reads no dataset, let alone a label file."""
    outcome = pixelforge_cli("compress", tmp_path / "no-run", tmp_path / "nope.png", "--out", tmp_path / "x.pfc")
    assert outcome.code == 2 and outcome.error_line == f"error: {tmp_path / 'nope.png'}: does not exist; check the path"
    (tmp_path / "moved.png").symlink_to(tmp_path / "gone.png")
    outcome = pixelforge_cli("compress", tmp_path / "no-run", tmp_path / "moved.png", "--out", tmp_path / "x.pfc")
    assert "moved.png: a symbolic link that points nowhere" in outcome.error_line and "label" not in outcome.error_line
    assert not (tmp_path / "x.pfc").exists()


CAPTION_JSONS = {  # a COCO-captions file hand-edited or written by another tool; each was a traceback or a wrong caption
    "an annotation that is not an object": ({"annotations": [1]}, "an annotation lacks 'image_id' or 'caption'"),
    "a null caption (read as the word 'none')": ({"annotations": [{"image_id": 1, "caption": None}]},
                                                 "needs a number 'image_id' and a text 'caption'"),
    "a number as file name": ({"images": [{"id": 1, "file_name": 5}]}, "a file name string 'file_name'"),
    "a list as image id": ({"images": [{"id": [1], "file_name": "a.png"}]}, "needs a number 'id'"),
}


@pytest.mark.parametrize("case", CAPTION_JSONS)
def test_a_malformed_coco_captions_file_is_one_line_naming_it(case, tmp_path, pixelforge_cli):
    import json

    _png(tmp_path / "a.png")
    data = {"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "caption": "a grey square"}]}
    data.update(CAPTION_JSONS[case][0])
    (tmp_path / "captions.json").write_text(json.dumps(data))
    outcome = pixelforge_cli("data", "check", tmp_path / "captions.json", "--task", "caption")
    assert outcome.code == 2 and CAPTION_JSONS[case][1] in outcome.error_line


def test_a_coco_captions_file_not_in_utf8_is_one_line(tmp_path, pixelforge_cli):
    _png(tmp_path / "a.png")
    text = '{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "caption": "un café"}]}'
    (tmp_path / "captions.json").write_bytes(text.encode("latin-1"))
    outcome = pixelforge_cli("data", "check", tmp_path / "captions.json", "--task", "caption")
    assert outcome.code == 2 and "captions.json: not UTF-8 text (byte 0xe9" in outcome.error_line


def test_one_image_id_for_two_files_is_refused_not_merged(tmp_path, pixelforge_cli):
    """The second file took the id and with it the first file's captions, silently."""
    import json

    _png(tmp_path / "a.png"), _png(tmp_path / "b.png")
    data = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}],
            "annotations": [{"image_id": 1, "caption": "a grey square"}]}
    (tmp_path / "captions.json").write_text(json.dumps(data))
    outcome = pixelforge_cli("data", "check", tmp_path / "captions.json", "--task", "caption")
    assert outcome.code == 2 and "image id 1 is listed for two files (a.png, b.png)" in outcome.error_line


def test_an_image_with_caption_rows_in_two_splits_is_refused(tmp_path, pixelforge_cli):
    """The first row's split won: the val caption was trained on, and nothing said so."""
    _png(tmp_path / "a.png")
    (tmp_path / "captions.csv").write_text("path,caption,split\na.png,a grey square,train\na.png,a square,val\n")
    outcome = pixelforge_cli("data", "check", tmp_path / "captions.csv", "--task", "caption")
    assert outcome.code == 2 and "a.png has rows in split train and val" in outcome.error_line


@pytest.mark.parametrize("text", ["caption,path\na grey square\n", "path,caption\n,a grey square,extra,cells\n"])
def test_a_captions_csv_row_without_a_path_is_one_line_naming_the_row(text, tmp_path, pixelforge_cli):
    """A short row (its path cell None) was a TypeError traceback."""
    (tmp_path / "captions.csv").write_text(text)
    outcome = pixelforge_cli("data", "check", tmp_path / "captions.csv", "--task", "caption")
    assert outcome.code == 2 and "captions.csv: row 2 has no path" in outcome.error_line


@pytest.mark.parametrize("line, message", [
    (b"a photo of {x} and {}\n", "no other braces"),  # was a KeyError traceback once the labels were embedded
    (b"a {} of }x\n", "no other braces"),  # a lone brace: a ValueError traceback
    ("une photo d'{} é\n".encode("latin-1"), r"not UTF-8 text \(byte 0xe9"),  # was a UnicodeDecodeError traceback
])
def test_a_zeroshot_template_file_that_cannot_be_filled_is_one_line(line, message, tmp_path):
    from pixelforge.errors import PixelforgeError
    from pixelforge.models.prompts import read_templates

    (tmp_path / "templates.txt").write_bytes(line)
    with pytest.raises(PixelforgeError, match=r"templates\.txt: .*" + message) as caught:
        read_templates(str(tmp_path / "templates.txt"), default=["a photo of a {}."])
    assert "\n" not in str(caught.value)


def test_a_zeroshot_template_with_literal_braces_is_read(tmp_path):
    """`{{` and `}}` are braces in str.format: "a {} in {{braces}}" was refused as holding two `{}`."""
    from pixelforge.models.prompts import read_templates

    (tmp_path / "templates.txt").write_text("a {} in {{braces}}\n{{}} a {}\n")
    templates = read_templates(str(tmp_path / "templates.txt"), default=[])
    assert [t.format("bee") for t in templates] == ["a bee in {braces}", "{} a bee"]


@pytest.mark.parametrize("spec", ["zebra", "26", "3:0.5,xx:0.5", "3:0.5,-1:0.5", "3:nan"])
def test_an_unknown_built_in_style_is_named_as_such(spec):
    """`stylize --method arbitrary` said "zebra: image not found"; -1 wrapped round to style 25 and a nan weight
    stylized with nan weights."""
    from pixelforge.deploy.runtime.arbitrary import builtin_weights
    from pixelforge.errors import PixelforgeError
    from pixelforge.tasks.style.methods import read_style

    assert builtin_weights(spec) is None
    with pytest.raises(PixelforgeError, match=f"^{spec}: neither an image file nor a built-in style; built-in "
                                              f"styles are numbers 0-25"):
        read_style(spec, 64, builtin_ok=True)
