"""CIFAR-10/100 python folders, built tiny and fake with pickle."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from classwise.data import load_data
from classwise.errors import UsageError


def _dump(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _batch(labels: list[int], key: bytes = b"labels") -> dict:
    """A batch whose image ``i`` is ``labels[i]`` in red, ``i`` in green and 7 in blue."""
    data = np.zeros((len(labels), 3, 32, 32), dtype=np.uint8)
    data[:, 0], data[:, 1], data[:, 2] = (np.array(labels)[:, None, None],
                                          np.arange(len(labels))[:, None, None], 7)
    return {b"batch_label": b"fake", b"data": data.reshape(len(labels), -1), key: labels}


def _cifar10(root: Path) -> Path:
    root.mkdir()
    for i in range(5):
        _dump(root / f"data_batch_{i + 1}", _batch([2 * i, 2 * i + 1]))
    _dump(root / "test_batch", _batch([9, 0, 4]))
    _dump(root / "batches.meta", {b"label_names": [f"c{k}".encode() for k in range(10)],
                                  b"num_vis": 3072})
    return root


def test_cifar10_folder_loads_with_names_labels_and_pixel_layout(tmp_path: Path) -> None:
    ds = load_data(_cifar10(tmp_path / "cifar-10-batches-py"))
    assert ds.name == "cifar10" and ds.class_names[:2] == ["c0", "c1"]
    assert ds.image_shape == (3, 32, 32) and (len(ds.train), len(ds.test)) == (10, 3)
    np.testing.assert_array_equal(ds.train.labels, np.arange(10))
    np.testing.assert_array_equal(ds.test.labels, [9, 0, 4])
    image = ds.test.load([2])[0].numpy() * 255
    np.testing.assert_allclose(image[:, 5, 9], [4, 2, 7], atol=1e-4)


def test_cifar100_folder_uses_fine_labels(tmp_path: Path) -> None:
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    train = _batch(list(range(100)), b"fine_labels")
    train[b"coarse_labels"] = [k // 5 for k in range(100)]
    _dump(root / "train", train)
    _dump(root / "test", _batch([42, 7], b"fine_labels"))
    _dump(root / "meta", {b"fine_label_names": [f"f{k}".encode() for k in range(100)],
                          b"coarse_label_names": [b"x"] * 20})
    ds = load_data(root)
    assert ds.name == "cifar100" and ds.num_classes == 100 and ds.class_names[42] == "f42"
    np.testing.assert_array_equal(ds.test.labels, [42, 7])


def test_missing_batch_is_named(tmp_path: Path) -> None:
    root = _cifar10(tmp_path / "c")
    (root / "data_batch_3").unlink()
    with pytest.raises(UsageError, match="looks like cifar10 but lacks data_batch_3; extract"):
        load_data(root)


def test_garbage_and_wrong_content_are_refused(tmp_path: Path) -> None:
    root = _cifar10(tmp_path / "c")
    (root / "test_batch").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(UsageError, match="cannot read .*test_batch as a CIFAR python file"):
        load_data(root)
    _dump(root / "test_batch", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(UsageError, match=r"data is uint8 \(2, 100\); a CIFAR batch holds"):
        load_data(root)
    _dump(root / "test_batch", {b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(UsageError, match="test_batch lacks 'labels'"):
        load_data(root)
    _dump(root / "test_batch", _batch([0, 10]))
    with pytest.raises(UsageError, match=r"labels must lie in 0\.\.9, found 10"):
        load_data(root)


class _Payload:
    """Unpickling this would create a file: a CIFAR folder must never run code."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return open, (str(self.target), "w")


def test_pickles_cannot_run_code(tmp_path: Path) -> None:
    root = _cifar10(tmp_path / "c")
    target = tmp_path / "created-by-unpickling"
    _dump(root / "batches.meta", {b"label_names": _Payload(target)})
    with pytest.raises(UsageError, match=r"io\.open is not allowed in a CIFAR file"):
        load_data(root)
    assert not target.exists()
