"""The gallery PNG (viz/grid.py): titles wrapped inside their panels, above their own image, never over another's."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFont

from pixelforge.viz import grid

LONG = [f"a_rather_long_class_name_number_{i}" for i in range(4)]


def _font():
    return ImageFont.load_default(size=grid.FONT_SIZE)


def test_long_titles_are_wrapped_inside_their_panels_and_neighbours_never_overlap():
    titles = [f"true {LONG[i % 4]}\npred another_{LONG[(i + 1) % 4]} 0.93" for i in range(8)]
    panels, (width, height) = grid.gallery_layout([(64, 64)] * 8, titles, 6, _font())
    assert width == 6 * grid.CELL and len(panels) == 8
    for panel, title in zip(panels, titles):
        left, top, right, bottom = panel.title_box
        assert all(_font().getlength(line) <= right - left for line in panel.title_lines)
        # Wrapping loses no character: only the breaks between words or inside a too-long name change.
        assert "".join(panel.title_lines).replace(" ", "") == title.replace("\n", "").replace(" ", "")
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
    first_row = [p.title_box for p in panels[:6]]
    assert all(a[2] <= b[0] for a, b in zip(first_row, first_row[1:]))


def test_a_row_s_titles_start_below_the_images_of_the_row_above():
    panels, _ = grid.gallery_layout([(32, 32)] * 12, [f"true {i}\npred {i + 1} 0.93" for i in range(12)], 6, _font())
    assert panels[6].title_box[1] >= max(p.image_box[3] for p in panels[:6])  # "true 6" is not printed over image 0
    assert all(p.title_box[3] <= p.image_box[1] for p in panels)  # each title above its own image


def test_the_png_shows_each_image_at_its_place_and_each_title_in_its_colour(tmp_path):
    images = [np.full((32, 48, 3), (0, 0, 255), np.uint8), np.full((40, 40), 0.5, np.float32)]  # floats as preview's
    path = grid.plot_gallery(images, ["blue", "grey"], tmp_path / "g.png", colors=["crimson", "darkgreen"])
    picture = np.asarray(Image.open(path).convert("RGB")).astype(int)
    panels, size = grid.gallery_layout([(48, 32), (40, 40)], ["blue", "grey"], 6, _font())
    assert picture.shape[:2] == (size[1], size[0])
    for panel, colour in zip(panels, [(0, 0, 255), (128, 128, 128)]):
        left, top, right, bottom = panel.image_box
        assert np.abs(picture[(top + bottom) // 2, (left + right) // 2] - colour).max() <= 1
        x0, y0, x1, y1 = panel.title_box
        band = picture[y0:y1, x0:x1].reshape(-1, 3)
        assert (np.abs(band - (255, 255, 255)).sum(1) > 0).any()  # the title was written
    crimson = picture[panels[0].title_box[1]:panels[0].title_box[3], :grid.CELL].reshape(-1, 3)
    assert (crimson[:, 0] > 150).any() and (crimson[:, 0] - crimson[:, 1] > 100).any()


def test_a_row_of_wide_photos_is_as_tall_as_the_photos_not_a_square():
    panels, (_, height) = grid.gallery_layout([(200, 60)] * 3, ["a", "b", "c"], 6, _font())
    image_height = panels[0].image_box[3] - panels[0].image_box[1]
    assert image_height < grid.CELL / 2 and height < image_height + 60


def test_a_legend_lies_under_the_grid_with_each_swatch_in_its_colour_and_wraps_to_the_width(tmp_path):
    """The segmentation gallery's class colours (viz/segmentation.py plot_triplets): swatches below the images."""
    names = [f"class_{i}" for i in range(12)]
    colours = [(255 - 20 * i, 20 * i, 100) for i in range(12)]
    images = [np.zeros((30, 30, 3), np.uint8)] * 3
    path = grid.plot_gallery(images, ["a", "truth", "prediction"], tmp_path / "g.png", columns=3,
                             legend=list(zip(names, colours)), cell=120)
    picture = np.asarray(Image.open(path).convert("RGB")).astype(int)
    panels, (width, grid_height) = grid.gallery_layout([(30, 30)] * 3, ["a", "truth", "prediction"], 3, _font(), 120)
    boxes = grid.legend_layout(names, _font(), width, top=grid_height)
    assert picture.shape[1] == width == 360 and picture.shape[0] == boxes[-1][3] + grid.PAD
    assert all(top >= grid_height for _, top, _, _ in boxes) and len({top for _, top, _, _ in boxes}) > 1  # wrapped
    assert all(right <= width for _, _, right, _ in boxes)
    for (left, top, right, bottom), colour in zip(boxes, colours):
        assert tuple(picture[(top + bottom) // 2, (left + right) // 2]) == colour
