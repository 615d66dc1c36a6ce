"""``.npz`` datasets: a good file loads; each kind of bad file is a one-line UsageError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classwise.data import load_data
from classwise.errors import UsageError


def _arrays(**changes: np.ndarray) -> dict[str, np.ndarray]:
    """A valid 3-class set of 6x5 RGB images, with ``changes`` applied."""
    pixels = np.random.default_rng(0)
    arrays = {
        "x_train": pixels.integers(0, 256, (6, 6, 5, 3), dtype=np.uint8),
        "y_train": np.array([0, 1, 2, 0, 1, 2]),
        "x_test": pixels.integers(0, 256, (3, 6, 5, 3), dtype=np.uint8),
        "y_test": np.array([2, 1, 0]),
        "class_names": np.array(["cat", "dog", "emu"]),
    }
    arrays.update(changes)
    return arrays


def _save(tmp_path: Path, **changes: np.ndarray) -> Path:
    path = tmp_path / "set.npz"
    np.savez(path, **_arrays(**changes))
    return path


def test_good_file_loads_channels_first_in_unit_range(tmp_path: Path) -> None:
    ds = load_data(_save(tmp_path))
    arrays = _arrays()
    assert ds.name == "set" and ds.class_names == ["cat", "dog", "emu"]
    assert ds.image_shape == (3, 6, 5) and (len(ds.train), len(ds.test)) == (6, 3)
    np.testing.assert_array_equal(ds.test.labels, [2, 1, 0])
    image = ds.train.load([4])[0].numpy()
    np.testing.assert_allclose(image, arrays["x_train"][4].transpose(2, 0, 1) / 255.0, atol=1e-6)


def test_grey_images_without_channel_axis_load_as_one_channel(tmp_path: Path) -> None:
    grey = np.arange(6 * 4 * 4, dtype=np.uint8).reshape(6, 4, 4)
    ds = load_data(_save(tmp_path, x_train=grey, x_test=grey[:3]))
    assert ds.image_shape == (1, 4, 4)
    assert ds.train.load([1])[0, 0, 0, 0].item() == pytest.approx(16 / 255)


def test_missing_key_is_named(tmp_path: Path) -> None:
    arrays = _arrays()
    del arrays["y_test"]
    np.savez(tmp_path / "set.npz", **arrays)
    with pytest.raises(UsageError, match="lacks y_test"):
        load_data(tmp_path / "set.npz")


def test_float_images_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="x_train has dtype float32; store images as uint8"):
        load_data(_save(tmp_path, x_train=np.zeros((6, 6, 5, 3), dtype=np.float32)))


@pytest.mark.parametrize("key, array, message", [
    ("x_test", np.zeros((3, 6, 5, 2), dtype=np.uint8), r"x_test has shape \(3, 6, 5, 2\)"),
    ("x_test", np.zeros((3, 8, 8, 3), dtype=np.uint8), r"train images are \(3, 6, 5\)"),
    ("y_train", np.zeros((6, 1), dtype=np.int64), "y_train must be a 1-D integer array"),
    ("y_train", np.array([0, 1, 2]), "6 images but 3 labels"),
])
def test_wrong_shapes_are_named(tmp_path: Path, key: str, array: np.ndarray,
                                message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_data(_save(tmp_path, **{key: array}))


def test_labels_out_of_range_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"test labels must lie in 0\.\.2, found 3"):
        load_data(_save(tmp_path, y_test=np.array([0, 3, 1])))


def test_garbage_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "set.npz"
    path.write_bytes(b"this is not a zip archive at all" * 10)
    with pytest.raises(UsageError, match="cannot read .*set.npz as .npz"):
        load_data(path)


def test_image_size_must_match_an_npz(tmp_path: Path) -> None:
    path = _save(tmp_path, x_train=np.zeros((6, 4, 4, 3), np.uint8),
                 x_test=np.zeros((3, 4, 4, 3), np.uint8))
    assert load_data(path, image_size=4).image_shape == (3, 4, 4)
    with pytest.raises(UsageError, match="images are 4x4 and only image folders are resized"):
        load_data(path, image_size=8)
