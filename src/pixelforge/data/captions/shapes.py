"""The built-in captioning set: scenes of 1-3 coloured shapes, 3-5 true captions each, and a test split of
attribute combinations that training never shows.

    DIR/images/{train,val,test}/NNNN.png          128 x 128 RGB
    DIR/annotations/{train,val,test}.json         COCO captions: images (+ "objects"), annotations (caption)

Each object has a colour (COLOURS), a shape (data/shape_drawing.py's four), a size (small or large) and a place;
objects are named left to right, and the horizontal gap between two objects is at least 14 px, so "to the left of"
is never a guess. The first caption of an image is always the canonical one ("a small red circle to the left of a
large blue square"); the others reword it from TEMPLATES.

Composition, not memory: the pairs in HELD_OUT (one colour per shape: green triangle, red star, blue circle,
yellow square) never appear in train or val; every test image holds at least one of them. A test score therefore
measures whether the model names a colour and a shape it has only seen apart. Each image entry also carries its
"objects" ([{colour, shape, size, x, y, r}]), which `attribute_pairs` and the attribute-match metric read; other
COCO tools ignore the extra key.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pixelforge.data.shape_drawing import SHAPE_CLASSES, draw_shape

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 205, 40),
           "purple": (150, 60, 190)}
SIZES = {"small": (9.0, 12.0), "large": (17.0, 22.0)}  # radius ranges in pixels at 128 px
HELD_OUT = {("green", "triangle"), ("red", "star"), ("blue", "circle"), ("yellow", "square")}
SPLITS = (("train", 3000), ("val", 300), ("test", 300))
# Round four: as many more training scenes of two and three objects as the train split has (3.5% of its scenes
# hold three, since random places rarely leave room for them), drawn after the test split from their own random
# stream, so val and test stay exactly the images of earlier rounds.
IMAGE_SIZE = 128
_MIN_GAP = 14.0  # px between two objects' horizontal extents

# {0}, {1}, {2}: the objects left to right ("a small red circle"); the first template is the canonical caption.
TEMPLATES = {
    1: ["{0}", "there is {0}", "a picture of {0}", "{0} on its own", "one {0}"],
    2: ["{0} to the left of {1}", "{1} to the right of {0}", "{0} and {1}", "there is {0} next to {1}",
        "{0} beside {1}"],
    3: ["{0} {1} and {2} from left to right", "{0} to the left of {1} and {2}", "there are {0} {1} and {2}",
        "three shapes {0} {1} and {2}", "{0} then {1} then {2}"],
}


def describe(obj: dict) -> str:
    return f"a {obj['size']} {obj['colour']} {obj['shape']}"


def captions_for(objects: list[dict], rng: np.random.Generator) -> list[str]:
    """3-5 captions: the canonical one first, then 2-4 other templates in random order."""
    names = [describe(o) for o in objects]
    templates = TEMPLATES[len(objects)]
    others = rng.permutation(len(templates) - 1)[: int(rng.integers(2, 5))] + 1
    chosen = [templates[0], *[templates[i] for i in others]]
    # "one a small ..." reads badly: "one" replaces the article.
    return [t.replace("one {0}", "one " + names[0][2:]).format(*names) for t in chosen]


def attribute_pairs(text: str) -> list[tuple[str, str]]:
    """The (colour, shape) pairs a caption names, sorted: each shape word with the colour word just before it.

    Example:
        >>> attribute_pairs("a small red circle to the left of a large blue square")
        [('blue', 'square'), ('red', 'circle')]
    """
    words = text.lower().split()
    pairs = []
    for i, word in enumerate(words):
        if word in SHAPE_CLASSES:
            colour = words[i - 1] if i > 0 and words[i - 1] in COLOURS else None
            pairs.append((colour, word))
    return sorted(pairs, key=lambda p: (p[0] or "", p[1]))


def _pairs_allowed(split: str, pairs: list[tuple[str, str]]) -> bool:
    unseen = sum(p in HELD_OUT for p in pairs)
    return unseen > 0 if split == "test" else unseen == 0


def _objects(rng: np.random.Generator, split: str) -> list[dict]:
    while True:
        count = int(rng.integers(1, 4))
        pairs = [(str(rng.choice(list(COLOURS))), str(rng.choice(SHAPE_CLASSES))) for _ in range(count)]
        if split == "test" and not any(p in HELD_OUT for p in pairs):
            # Make one object a held-out pair (the others stay random): test images always need one.
            pairs[int(rng.integers(count))] = sorted(HELD_OUT)[int(rng.integers(len(HELD_OUT)))]
        if not _pairs_allowed(split, pairs):
            continue
        placed = _place(rng, count)
        if placed is not None:
            return [{"colour": c, "shape": s, **p} for (c, s), p in zip(pairs, placed)]


def _crowded_objects(rng: np.random.Generator) -> list[dict]:
    """Two or three objects (three half the time) of seen pairs, spread so that three objects fit (`_spread`)."""
    while True:
        count = int(rng.integers(2, 4))
        pairs = [(str(rng.choice(list(COLOURS))), str(rng.choice(SHAPE_CLASSES))) for _ in range(count)]
        placed = _spread(rng, count) if _pairs_allowed("train", pairs) else None
        if placed is not None:
            return [{"colour": c, "shape": s, **p} for (c, s), p in zip(pairs, placed)]


def _spread(rng: np.random.Generator, count: int) -> list[dict] | None:
    """Like `_place`, but the horizontal slack is shared out at random, so any sizes that fit are placed."""
    sizes = [str(rng.choice(list(SIZES))) for _ in range(count)]
    radii = [float(rng.uniform(*SIZES[s])) for s in sizes]
    slack = IMAGE_SIZE - 4 - 2 * sum(radii) - (count - 1) * _MIN_GAP
    if slack < 0:
        return None
    cuts = np.sort(rng.uniform(0, slack, count))
    left, placed = 2.0, []
    for k, r in enumerate(radii):
        x = left + cuts[k] + r
        placed.append({"size": sizes[k], "x": round(x, 1), "y": round(float(rng.uniform(r + 2, IMAGE_SIZE - r - 2)), 1),
                       "r": round(r, 1)})
        left += 2 * r + _MIN_GAP
    return placed


def _place(rng: np.random.Generator, count: int) -> list[dict] | None:
    """Sizes and centres, left to right, with `_MIN_GAP` between horizontal extents (None: no room, retry)."""
    sizes = [str(rng.choice(list(SIZES))) for _ in range(count)]
    radii = [float(rng.uniform(*SIZES[s])) for s in sizes]
    for _ in range(20):
        xs = [float(rng.uniform(r + 2, IMAGE_SIZE - r - 2)) for r in radii]
        order = np.argsort(xs)
        ok = all(xs[order[k + 1]] - radii[order[k + 1]] - xs[order[k]] - radii[order[k]] >= _MIN_GAP
                 for k in range(count - 1))
        if ok:
            return [{"size": sizes[i], "x": round(xs[i], 1), "y": round(float(rng.uniform(radii[i] + 2, IMAGE_SIZE - radii[i] - 2)), 1),
                     "r": round(radii[i], 1)} for i in order]
    return None


def _draw(rng: np.random.Generator, objects: list[dict]) -> Image.Image:
    grey = rng.integers(200, 246)
    canvas = np.clip(grey + rng.normal(0, 6, (IMAGE_SIZE, IMAGE_SIZE, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for obj in objects:
        colour = tuple(int(c) for c in np.clip(np.asarray(COLOURS[obj["colour"]]) + rng.integers(-20, 21, 3), 0, 255))
        # Squares and triangles drawn upright-ish so "square" never looks like a diamond-shaped other thing.
        angle = float(rng.uniform(-0.3, 0.3)) + {"square": np.pi / 4, "triangle": -np.pi / 2}.get(obj["shape"], 0.0)
        draw_shape(draw, obj["shape"], obj["x"], obj["y"], obj["r"], angle, colour)
    return image


def write_shapes_captions(root: Path, seed: int, splits: tuple = SPLITS, extra_train: int | None = None) -> None:
    """Write the set under `root` (see the module docstring); `splits`: ((name, images), ...), smaller for tests;
    `extra_train` more training scenes of 2-3 objects (`_crowded_objects`) after the splits (default: as many as
    the train split's)."""
    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    ids = {"image": 0, "caption": 0}
    written = {}
    for split, count in splits:
        written[split] = _write_scenes(root, split, count, lambda: _objects(rng, split), rng, ids)
    extra_train = dict(splits).get("train", 0) if extra_train is None else extra_train
    if extra_train and "train" in written:
        crowded = np.random.default_rng([seed, 1])  # its own stream: the splits above stay as they were
        more = _write_scenes(root, "train", extra_train, lambda: _crowded_objects(crowded), crowded, ids)
        written["train"] = [a + b for a, b in zip(written["train"], more)]
    for split, (images, annotations) in written.items():
        info = {"description": f"pixelforge built-in shapes captions, {split} split",
                "held_out_pairs": sorted(" ".join(p) for p in HELD_OUT)}
        (root / "annotations" / f"{split}.json").write_text(
            json.dumps({"info": info, "images": images, "annotations": annotations}))


def _write_scenes(root: Path, split: str, count: int, objects_fn, rng: np.random.Generator, ids: dict):
    """Draw `count` scenes of `objects_fn()` into images/SPLIT: (COCO images, COCO annotations)."""
    folder = root / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for _ in range(count):
        ids["image"] += 1
        objects = objects_fn()
        name = f"{split}/{ids['image']:05d}.png"
        _draw(rng, objects).save(root / "images" / name)
        images.append({"id": ids["image"], "file_name": name, "width": IMAGE_SIZE, "height": IMAGE_SIZE,
                       "objects": objects})
        for text in captions_for(objects, rng):
            ids["caption"] += 1
            annotations.append({"id": ids["caption"], "image_id": ids["image"], "caption": text})
    return images, annotations
