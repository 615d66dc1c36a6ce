"""Shape figures on hand-drawn masks."""

from __future__ import annotations

import numpy as np
import pytest

from classwise.errors import UsageError
from classwise.evaluation.shape import (
    components,
    largest_component_share,
    on_object,
    shape_figures,
)


def draw(*rows: str) -> np.ndarray:
    """A boolean mask from rows of '#' (on) and '.' (off)."""
    return np.array([[c == "#" for c in row] for row in rows])


def test_diagonal_neighbours_join():
    pattern = draw("#...",
                   ".#..",
                   "..#.",
                   "...#")
    assert components(pattern) == 1
    assert largest_component_share(pattern) == 1.0


def test_two_separate_blobs():
    pattern = draw("##....",
                   "##....",
                   "......",
                   "....#.")
    assert components(pattern) == 2
    assert largest_component_share(pattern) == pytest.approx(4 / 5)


def test_empty_pattern():
    pattern = np.zeros((5, 5), dtype=bool)
    assert components(pattern) == 0
    assert largest_component_share(pattern) == 0.0
    assert on_object(pattern, np.ones((5, 5), dtype=bool)) == 0.0
    assert shape_figures(pattern) == {"components": 0, "largest_component_share": 0.0}


def test_on_object_counts_pattern_pixels_on_the_mask():
    pattern = draw("##..",
                   "....",
                   "...#",
                   "...#")
    mask = draw("####",
                "####",
                "....",
                "...#")
    assert on_object(pattern, mask) == pytest.approx(3 / 4)
    assert shape_figures(pattern, mask) == {
        "components": 2, "largest_component_share": pytest.approx(0.5),
        "on_object": pytest.approx(0.75)}


def test_bad_shapes_raise_one_line_errors():
    with pytest.raises(UsageError, match="2-D"):
        components(np.zeros((1, 4, 4), dtype=bool))
    with pytest.raises(UsageError, match="object mask is"):
        on_object(np.ones((4, 4), dtype=bool), np.ones((3, 3), dtype=bool))
