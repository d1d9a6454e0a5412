"""`pixelforge evaluate` on a box or mask run says which split and how many images it scored, as classification's
summary does (an evaluation without them cannot be compared)."""

from pixelforge.tasks.registry import get_task


def test_box_and_mask_summaries_name_the_split_and_the_image_count():
    detect = get_task("detect").format_metrics({"split": "test", "num_images": 60, "map": 0.5, "map50": 0.9,
                                                "per_class": {"circle": 0.4}})
    assert detect.splitlines()[0] == "test: 60 images  map 0.5000  map50 0.9000"
    assert detect.splitlines()[1].split() == ["circle", "0.4000"]
    segment = get_task("segment").format_metrics({"split": "val", "num_images": 3, "miou": 0.5})
    assert segment.startswith("val: 3 images  miou 0.5000")
