"""Input-space validation outliers: shuffle_parts keeps every part, changes every order, refuses what it can't do."""

from __future__ import annotations

import numpy as np
import pytest

from unseen.bench import select
from unseen.bench.proxies import shuffle_parts
from unseen.exceptions import InputError


def _tiles(image: np.ndarray, grid: int) -> list[bytes]:
    th, tw = image.shape[0] // grid, image.shape[1] // grid
    return [image[r * th : (r + 1) * th, c * tw : (c + 1) * tw].tobytes() for r in range(grid) for c in range(grid)]


@pytest.mark.parametrize("shape, grid", [((20, 8, 8), 2), ((6, 12, 12, 3), 3), ((5, 28, 28), 2)])
def test_images_keep_their_tiles_in_another_order(shape, grid):
    images = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    out = shuffle_parts(images, seed=1, grid=grid)
    assert out.shape == images.shape and out.dtype == images.dtype
    for x, y in zip(images, out):
        assert sorted(_tiles(x, grid)) == sorted(_tiles(y, grid))  # the same tiles ...
        assert _tiles(x, grid) != _tiles(y, grid)  # ... never in the original order
    np.testing.assert_array_equal(out, shuffle_parts(images, seed=1, grid=grid))
    assert not np.array_equal(out, shuffle_parts(images, seed=2, grid=grid))


def test_quadrants_move_as_whole_blocks():
    image = np.block([[np.full((2, 2), 0), np.full((2, 2), 1)], [np.full((2, 2), 2), np.full((2, 2), 3)]])[None]
    out = shuffle_parts(image, seed=0)[0]
    blocks = [out[:2, :2], out[:2, 2:], out[2:, :2], out[2:, 2:]]
    assert all(len(np.unique(b)) == 1 for b in blocks)
    assert sorted(int(b[0, 0]) for b in blocks) == [0, 1, 2, 3]


def test_texts_keep_their_words_in_another_order():
    texts = ["a member of the genus Canis", "an edible fruit", "dog", "the the"]
    out = shuffle_parts(texts, seed=3)
    assert isinstance(out, list) and len(out) == 4
    for t, s in zip(texts[:2], out[:2]):
        assert sorted(t.split()) == sorted(s.split()) and t != s
    assert out[2:] == ["dog", "the the"]  # nothing to reorder
    assert shuffle_parts(texts, seed=3) == out


@pytest.mark.parametrize(
    "inputs, kwargs, match",
    [
        (np.zeros((10, 16)), {}, "Features and tabular rows are not supported"),
        (np.zeros((3, 7, 8)), {}, "do not split into 2 x 2 tiles"),
        (np.zeros((3, 8, 8)), {"grid": 1}, "grid must be an integer >= 2"),
        ([], {}, "no texts given"),
        ("one text", {}, "pass a list of texts"),
        (np.zeros((0, 8, 8)), {}, "got an array of shape"),
    ],
)
def test_bad_inputs_say_what_to_do(inputs, kwargs, match):
    with pytest.raises(InputError, match=match):
        shuffle_parts(inputs, **kwargs)


def test_select_takes_encoded_shuffled_inputs_as_validation_outliers():
    rng = np.random.default_rng(0)
    proj = rng.normal(size=(64, 32))  # a frozen "encoder": fixed random features of 8 x 8 images

    def encode(images):
        return np.maximum(images.reshape(len(images), -1) @ proj, 0)

    y = rng.integers(0, 4, 600)
    centres = rng.uniform(0, 1, (4, 8, 8))
    images = centres[y] + 0.1 * rng.normal(size=(600, 8, 8))
    tr, va = slice(0, 450), slice(450, None)
    sel = select(
        encode(images[tr]),
        y[tr],
        encode(images[va]),
        y[va],
        candidates=["knn", "mahalanobis"],
        ood_val={"parts shuffled": encode(shuffle_parts(images[va]))},
    )
    assert "real validation outliers: parts shuffled (150 rows)" in sel.method
    assert all(set(v) == {"parts shuffled"} for v in sel.per_set.values())
