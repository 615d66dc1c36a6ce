"""Image folders: layout, labels, colour decisions, resizing, laziness and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classwise.data import folder, load_data
from classwise.data.folder import FolderSplit, load_folder
from classwise.errors import UsageError


def _grey(value: int, size: tuple[int, int] = (6, 4)) -> Image.Image:
    """A grey ``size`` = (width, height) image whose pixels are ``value`` plus their column."""
    w, h = size
    return Image.fromarray((value + np.tile(np.arange(w), (h, 1))).astype(np.uint8))


def _make(root: Path, classes: dict[str, int], per_class: int = 2,
          size: tuple[int, int] = (6, 4)) -> Path:
    """train/ and test/ with ``per_class`` grey PNGs per class, valued ``classes[name] + i``."""
    for split in ("train", "test"):
        for name, value in classes.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                _grey(value + i, size).save(root / split / name / f"{i:03d}.png")
    return root


def test_classes_follow_sorted_folder_names_and_pixels_are_exact(tmp_path: Path) -> None:
    root = _make(tmp_path / "pets", {"dog": 100, "cat": 10, "emu": 200})
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "train" / "cat" / "._000.png").write_bytes(b"macOS metadata, not an image")
    (root / "train" / ".cache").mkdir()
    ds = load_data(root)
    assert isinstance(ds.train, FolderSplit) and ds.name == "pets"
    assert ds.class_names == ["cat", "dog", "emu"] and ds.image_shape == (1, 4, 6)
    np.testing.assert_array_equal(ds.train.labels, [0, 0, 1, 1, 2, 2])
    images = ds.test.load([3, 0]).numpy()
    assert images.shape == (2, 1, 4, 6) and images.dtype == np.float32
    np.testing.assert_allclose(images[0, 0] * 255, np.asarray(_grey(101)), atol=1e-4)
    np.testing.assert_allclose(images[1, 0] * 255, np.asarray(_grey(10)), atol=1e-4)


def test_one_colour_image_makes_the_dataset_colour(tmp_path: Path) -> None:
    root = _make(tmp_path, {"a": 0, "b": 50}, per_class=3)
    Image.new("RGB", (6, 4), (255, 0, 0)).save(root / "test" / "b" / "001.png")
    ds = load_folder(root)
    assert ds.image_shape == (3, 4, 6)
    red, grey = ds.test.load([4, 0]).numpy()
    np.testing.assert_allclose(red[:, 0, 0], [1, 0, 0])
    np.testing.assert_allclose(grey[:, 1, 2] * 255, [2, 2, 2], atol=1e-4)


def test_palette_transparency_and_16_bit_grey_convert_properly(tmp_path: Path) -> None:
    root = _make(tmp_path, {"a": 0, "b": 50})
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., :3], rgba[..., 3] = (200, 100, 50), 128
    Image.fromarray(rgba, "RGBA").save(root / "train" / "a" / "001.png")
    palette = Image.new("P", (6, 4), 1)
    palette.putpalette([0, 0, 0, 0, 255, 0])
    palette.save(root / "train" / "b" / "001.png", transparency=0)
    ds = load_folder(root)
    half, green = ds.train.load([1, 3]).numpy() * 255
    np.testing.assert_allclose(half[:, 0, 0], np.array([200, 100, 50]) * 128 / 255, atol=1)
    np.testing.assert_allclose(green[:, 0, 0], [0, 255, 0])

    grey_root = _make(tmp_path / "grey", {"a": 0, "b": 50})
    deep = np.full((4, 6), 257 * 100, dtype=np.uint16)
    Image.fromarray(deep).save(grey_root / "test" / "b" / "001.png")
    grey = load_folder(grey_root)
    assert grey.image_shape == (1, 4, 6)
    assert grey.test.load([3])[0, 0, 0, 0].item() * 255 == pytest.approx(100, abs=1e-3)


def test_image_size_resizes_the_shorter_side_and_crops_the_centre(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    wide = np.zeros((8, 16, 3), dtype=np.uint8)
    wide[:, 4:12] = (0, 0, 255)  # the centre square is blue, the sides black
    for split in ("train", "test"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
        Image.fromarray(wide).save(root / split / "a" / "wide.png")
        Image.new("RGB", (10, 30), (0, 255, 0)).save(root / split / "b" / "tall.jpg", quality=95)
    with pytest.raises(UsageError, match=r"different sizes \(16x8 and 10x30\); give --image-size"):
        load_data(root)
    ds = load_data(root, image_size=4)
    assert ds.image_shape == (3, 4, 4)
    blue, green = ds.test.load([0, 1]).numpy()
    assert blue[2].min() > 0.8 and blue[:2].max() < 0.1  # squashing would blacken the sides
    assert green[1].min() > 0.9 and green[[0, 2]].max() < 0.1


def test_a_size_outside_the_sample_is_caught_at_load(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(folder, "SAMPLE", 0)
    root = _make(tmp_path, {"a": 0, "b": 50}, per_class=3)
    _grey(0, (5, 5)).save(root / "train" / "b" / "002.png")
    ds = load_folder(root)
    ds.train.load([0, 1, 2, 3, 4])
    with pytest.raises(UsageError, match=r"have different sizes \(6x4 and 5x5\)"):
        ds.train.load([5])


def test_construction_reads_only_a_few_headers(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = _make(tmp_path, {"a": 0, "b": 50}, per_class=60, size=(4, 4))
    opened = []
    real_open = Image.open

    def counting_open(path: str, *args: object, **kwargs: object) -> Image.Image:
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    ds = load_folder(root)
    assert len(ds.train) + len(ds.test) == 240
    assert len(opened) <= folder.SAMPLE + 4 < 240
    assert not hasattr(ds.train, "images")
    opened.clear()
    ds.train.load([7, 100])
    assert opened == ["007.png", "040.png"]


def test_missing_split_is_named(tmp_path: Path) -> None:
    root = _make(tmp_path, {"a": 0})
    for path in sorted((root / "test").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (root / "test").rmdir()
    with pytest.raises(UsageError, match=r"has no test/ folder; an image folder holds train/"):
        load_data(root)


def test_other_folders_list_the_data_forms(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(UsageError, match="give a built-in name .* or a CIFAR-10/100 python folder"):
        load_data(tmp_path)


def test_class_folders_must_agree(tmp_path: Path) -> None:
    root = _make(tmp_path, {"a": 0, "b": 50})
    (root / "train" / "c").mkdir()
    _grey(1).save(root / "train" / "c" / "x.png")
    (root / "test" / "d").mkdir()
    with pytest.raises(UsageError, match="only in train: c; only in test: d"):
        load_data(root)


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    root = _make(tmp_path, {"a": 0, "b": 50})
    for path in (root / "test" / "b").iterdir():
        path.unlink()
    (root / "test" / "b" / "readme.txt").write_text("no images here")
    with pytest.raises(UsageError, match=r"test/b holds no images"):
        load_data(root)


@pytest.mark.parametrize("sample", [folder.SAMPLE, 0])
def test_unreadable_image_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   sample: int) -> None:
    monkeypatch.setattr(folder, "SAMPLE", sample)
    root = _make(tmp_path, {"a": 0, "b": 50})
    (root / "train" / "a" / "001.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(UsageError, match=r"cannot read image .*a/001\.png .*fix or remove"):
        load_data(root).train.load()
