"""Property-based hostile input (Hypothesis): whatever bytes arrive, the upload parser and the annotation readers
answer with a value or their own one-line error, never another exception."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelforge.errors import PixelforgeError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


async def _chunks(body: bytes, size: int):
    for start in range(0, len(body), size):
        yield body[start:start + size]


def _read(body: bytes, boundary: bytes = b"XyZ", chunk: int = 7, max_files: int = 3):
    from pixelforge.deploy.serve.uploads import read_uploads

    content_type = "multipart/form-data; boundary=" + boundary.decode("latin-1")
    return asyncio.run(read_uploads(content_type, str(len(body)), _chunks(body, chunk), "file", 4096, max_files))


def _part(name: str, filename: str, data: bytes, boundary: bytes = b"XyZ") -> bytes:
    return (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"" + name.encode() + b"\"; filename=\""
            + filename.encode() + b"\"\r\nContent-Type: image/png\r\n\r\n" + data + b"\r\n")


@FAST
@given(body=st.binary(max_size=600), chunk=st.integers(1, 64))
def test_upload_parser_on_arbitrary_bytes(body, chunk):
    from pixelforge.deploy.serve.uploads import UploadRejected

    try:
        uploads = _read(body, chunk=chunk)
    except UploadRejected as exc:
        assert exc.status_code in (400, 413, 415) and "\n" not in exc.message
    else:
        assert all(u.field == "file" for u in uploads)


@FAST
@given(parts=st.lists(st.tuples(st.sampled_from(["file", "other", ""]), st.text(max_size=12),
                                st.binary(max_size=300)), max_size=5),
       cut=st.integers(0, 40), chunk=st.integers(1, 97))
def test_upload_parser_on_mangled_multipart(parts, cut, chunk):
    """Well-formed parts, then cut short, split at any chunk size: the file parts come back whole, or a refusal."""
    from pixelforge.deploy.serve.uploads import UploadRejected

    body = b"".join(_part(n, f.replace('"', ""), d) for n, f, d in parts) + b"--XyZ--\r\n"
    body = body[:len(body) - cut]
    try:
        uploads = _read(body, chunk=chunk)
    except UploadRejected as exc:
        assert exc.status_code in (400, 413) and "\n" not in exc.message
    else:
        expected = [d for n, _, d in parts if n == "file"]
        assert [u.data for u in uploads] == expected[:len(uploads)]


json_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True)
                           | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                        max_size=4), max_leaves=25)
coco_like = st.fixed_dictionaries({}, optional={
    "images": st.lists(st.fixed_dictionaries({}, optional={"id": json_values, "file_name": json_values,
                                                           "width": json_values, "height": json_values}), max_size=3),
    "annotations": st.lists(st.fixed_dictionaries({}, optional={
        "id": json_values, "image_id": json_values, "category_id": json_values, "bbox": json_values,
        "iscrowd": json_values, "segmentation": json_values}), max_size=4),
    "categories": st.lists(st.fixed_dictionaries({}, optional={"id": json_values, "name": json_values}), max_size=3),
})


@FAST
@given(document=coco_like | json_values)
def test_coco_reader_on_arbitrary_json(document, tmp_path_factory):
    """Strict reading raises only PixelforgeError; `data check` (lenient) never raises at all."""
    from pixelforge.data.boxes.check import check_boxes
    from pixelforge.data.boxes.source import read_boxes

    root = tmp_path_factory.mktemp("coco")
    (root / "annotations").mkdir()
    (root / "annotations" / "train.json").write_text(json.dumps(document))
    try:
        read_boxes(root)
    except PixelforgeError as exc:
        assert "\n" not in str(exc)
    report = check_boxes(root)
    assert report.problem_count >= 0


@FAST
@given(lines=st.lists(st.text(alphabet="0123456789.-e +\t", max_size=40), max_size=6))
def test_yolo_reader_on_arbitrary_label_lines(lines, tmp_path_factory):
    import yaml
    from PIL import Image

    from pixelforge.data.boxes.check import check_boxes
    from pixelforge.data.boxes.source import read_boxes

    root = tmp_path_factory.mktemp("yolo")
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (32, 24)).save(root / "images" / "train" / "a.png")
    (root / "labels" / "train" / "a.txt").write_text("\n".join(lines))
    (root / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "images/train", "names": ["a", "b"]}))
    try:
        source = read_boxes(root)
    except PixelforgeError as exc:
        assert "a.txt" in str(exc) and "\n" not in str(exc)
    else:
        boxes = source.images[0].boxes
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    check_boxes(root)


@FAST
@given(text=st.text(max_size=300))
def test_csv_reader_on_arbitrary_text(text, tmp_path_factory):
    from pixelforge.data.sources import read_csv

    path = tmp_path_factory.mktemp("csv") / "labels.csv"
    path.write_bytes(text.encode("utf-8", errors="replace"))
    try:
        read_csv(path)
    except PixelforgeError as exc:
        assert "labels.csv" in str(exc)


@pytest.mark.parametrize("document", [[], {"images": "x"}, {"annotations": [None]}, 7])
def test_coco_shapes_hypothesis_found_once(document, tmp_path):
    """Seeds from the strategies above, kept as plain cases so they run on every commit whatever Hypothesis draws."""
    from pixelforge.data.boxes.check import check_boxes

    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.json").write_text(json.dumps(document))
    assert check_boxes(tmp_path).problem_count >= 1
