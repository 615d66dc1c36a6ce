"""In-memory splits: uint8 images, or float images already in [0, 1]."""

import numpy as np
import pytest

from classwise.data.base import ArraySplit
from classwise.errors import UsageError


def test_float_images_in_the_unit_range_load_as_they_are():
    images = np.linspace(0, 1, 2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    split = ArraySplit(images, np.array([0, 1]))
    np.testing.assert_array_equal(split.load().numpy(), images)


@pytest.mark.parametrize("bad, names", [(-1.0, "-1 to"), (255.0, "to 255"), (np.nan, "nan")])
def test_float_images_outside_the_unit_range_are_refused(bad, names):
    images = np.full((2, 1, 3, 3), 0.5, dtype=np.float32)
    images[1, 0, 1, 1] = bad
    with pytest.raises(UsageError, match="must lie in \\[0, 1\\]") as err:
        ArraySplit(images, np.array([0, 1]))
    assert names in str(err.value) and "normalisation" in str(err.value)
