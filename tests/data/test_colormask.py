"""Colour masks to class indices: exact colours, noise, anti-aliased edges, and unlisted colours."""

from __future__ import annotations

import numpy as np
import pytest

from semflow.data.colormask import ColorTable
from semflow.errors import SemflowInputError

BLACK, WHITE, RED = (0, 0, 0), (255, 255, 255), (200, 30, 30)
TABLE = ColorTable(np.array([BLACK, WHITE, RED], np.uint8), np.array([0, 1, 255]), ("bg", "fg", "ignore"),
                   tolerance=20)


def halves(left: tuple[int, int, int], right: tuple[int, int, int], h: int = 6, w: int = 8) -> np.ndarray:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2], rgb[:, w // 2 :] = left, right
    return rgb


def test_exact_and_noisy_colours():
    rgb = halves(BLACK, RED)
    expected = np.where(np.arange(8) < 4, 0, 255)[None].repeat(6, 0)
    np.testing.assert_array_equal(TABLE(rgb, "m.png"), expected)
    noisy = np.clip(rgb.astype(int) + np.random.default_rng(0).integers(-8, 9, rgb.shape), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(TABLE(noisy, "m.png"), expected)  # |noise| <= 8*sqrt(3) < 20


def test_anti_aliased_edge_takes_the_nearer_side():
    rgb = halves(BLACK, WHITE)
    rgb[:, 3] = (90, 90, 90)  # 35% white: 156 levels from black, far outside the tolerance
    rgb[:, 4] = (170, 170, 170)  # 67% white
    labels = TABLE(rgb, "m.png")
    np.testing.assert_array_equal(labels[0], [0, 0, 0, 0, 1, 1, 1, 1])


def test_unlisted_region_is_an_error_even_between_two_listed_colours():
    rgb = halves(BLACK, WHITE, w=16)
    rgb[:, 6:10] = (128, 128, 128)  # a 4-pixel-wide grey band: a blend colour, but a region, not an edge
    # No band pixel has both black and white within 2 pixels, so none is an edge: all 4 x 6 are reported.
    with pytest.raises(SemflowInputError, match=r"m\.png: colour \(128, 128, 128\) at x=6, y=0 \(24 such pixels\)"):
        TABLE(rgb, "m.png")
    rgb[:, 6:8] = BLACK  # now 2 pixels wide: as wide as anti-aliasing makes an edge, so it is accepted
    np.testing.assert_array_equal(TABLE(rgb, "m.png")[0], [0] * 8 + [1] * 8)


def test_colour_far_from_every_listed_one():
    rgb = halves(BLACK, WHITE)
    rgb[2, 2] = (0, 0, 255)
    with pytest.raises(SemflowInputError, match=r"colour \(0, 0, 255\) at x=2, y=2 .*nearest listed colour \(0, 0, 0\) \(bg\)"):
        TABLE(rgb, "m.png")


def test_mask_with_no_listed_colour_at_all_is_an_error_not_a_crash():
    rgb = halves((0, 0, 255), (0, 255, 0))  # every pixel unlisted: no region to be an edge of
    with pytest.raises(SemflowInputError, match=r"colour \(0, 0, 255\) at x=0, y=0 \(48 such pixels\)"):
        TABLE(rgb, "m.png")


def test_duplicate_colours_are_refused():
    with pytest.raises(SemflowInputError, match="same colour twice"):
        ColorTable(np.array([BLACK, BLACK], np.uint8), np.array([0, 1]), ("a", "b"))
