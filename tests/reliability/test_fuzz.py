"""Property-based tests and fuzzing with hypothesis.

Properties of stamping, top-k selection, budget rounding and projection; the loaders' shape
handling on random arrays; and random or mutated bytes fed to every loader, which must end in
a dataset or model, or in a :class:`UsageError`, never in another exception.

``CLASSWISE_FUZZ=N`` multiplies every example budget by N (and draws fresh random examples):
``CLASSWISE_FUZZ=20 .venv/bin/python -m pytest tests/reliability/test_fuzz.py``.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from safetensors.torch import save as save_safetensors
from torch import nn

from classwise.data import load_data
from classwise.data.base import ArraySplit, Dataset
from classwise.data.folder import FolderSplit
from classwise.errors import UsageError
from classwise.models import load_model
from classwise.models.factory import load_weights
from classwise.search.ops import pixels_for_budget, project_budget, stamp, topk_mask

SCALE = int(os.environ.get("CLASSWISE_FUZZ", "1"))
# Pillow warns about the damaged files it still reads; the answer is what counts here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def budget(examples: int) -> settings:
    """``examples`` times ``CLASSWISE_FUZZ``; fixed examples unless the budget is scaled up."""
    return settings(max_examples=examples * SCALE, deadline=None, database=None,
                    derandomize=SCALE == 1, suppress_health_check=[HealthCheck.too_slow])


# -- search operations -------------------------------------------------------------------

sizes = st.integers(1, 6)
unit = st.floats(0, 1, width=32)


@st.composite
def stamp_inputs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, c, h, w = draw(st.integers(1, 3)), draw(st.sampled_from([1, 3])), draw(sizes), draw(sizes)
    x = draw(hnp.arrays(np.float32, (n, c, h, w), elements=unit))
    canvas = draw(hnp.arrays(np.float32, (c, h, w), elements=unit))
    pattern = draw(hnp.arrays(np.bool_, (h, w)))
    return x, canvas, pattern


@budget(100)
@given(stamp_inputs())
def test_stamping_replaces_exactly_the_pattern_pixels(inputs) -> None:
    x, canvas, pattern = map(torch.from_numpy, inputs)
    out = stamp(x, canvas, pattern)
    assert out.shape == x.shape and out.dtype == x.dtype
    on = pattern.expand_as(out)
    assert torch.equal(out[on], canvas.expand_as(out)[on])
    assert torch.equal(out[~on], x[~on])
    assert torch.equal(stamp(out, canvas, pattern), out)  # stamping twice changes nothing


@st.composite
def scores_and_k(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    shape = (draw(st.integers(1, 4)), draw(sizes), draw(sizes))
    # few distinct values, so ties are common
    scores = draw(hnp.arrays(np.float32, shape, elements=st.sampled_from(
        [-1e30, -2.5, 0.0, 0.25, 1.0, 3.0, 1e30])))
    return scores, draw(st.integers(1, shape[1] * shape[2]))


@budget(150)
@given(scores_and_k())
def test_topk_keeps_k_highest_and_breaks_ties_by_position(drawn) -> None:
    scores, k = drawn
    keep = topk_mask(torch.from_numpy(scores), k).numpy()
    assert keep.shape == scores.shape and keep.dtype == np.bool_
    for row, kept in zip(scores.reshape(len(scores), -1), keep.reshape(len(keep), -1),
                         strict=True):
        assert kept.sum() == k
        if k < kept.size:
            assert row[kept].min() >= row[~kept].max()
        # among equal scores, earlier pixels are kept first
        threshold = row[kept].min()
        tied = np.flatnonzero(row == threshold)
        assert (np.diff(kept[tied].astype(int)) <= 0).all()


@budget(200)
@given(st.floats(allow_nan=True, allow_infinity=True), sizes, st.integers(2, 6))
def test_budget_rounds_to_a_valid_pixel_count_or_is_refused(share: float, h: int, w: int) -> None:
    total = h * w
    try:
        k = pixels_for_budget(share, None, h, w)
    except UsageError:
        assert not 0 < share < 1
        return
    assert 0 < share < 1 and 1 <= k <= total - 1
    assert abs(k - share * total) <= 0.5 or k in (1, total - 1)


def test_a_one_pixel_image_has_no_budget() -> None:
    with pytest.raises(UsageError):
        pixels_for_budget(0.5, None, 1, 1)


@budget(100)
@given(st.floats(0.001, 0.999), st.floats(0.001, 0.999), st.integers(2, 40), st.integers(2, 40))
def test_budget_rounding_is_monotone(a: float, b: float, h: int, w: int) -> None:
    lo, hi = sorted((a, b))
    assert pixels_for_budget(lo, None, h, w) <= pixels_for_budget(hi, None, h, w)


@budget(100)
@given(st.integers(-5, 80), sizes, sizes)
def test_pixel_counts_pass_through_or_are_refused(pixels: int, h: int, w: int) -> None:
    if 1 <= pixels < h * w:
        assert pixels_for_budget(None, pixels, h, w) == pixels
    else:
        with pytest.raises(UsageError, match="out of range"):
            pixels_for_budget(None, pixels, h, w)


@budget(100)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 3), sizes, sizes),
                  elements=st.floats(-3, 3, width=32)), st.floats(0.5, 30))
def test_projection_stays_in_the_box_and_the_budget(mask: np.ndarray, k: float) -> None:
    m = torch.from_numpy(mask)
    p = project_budget(m, k)
    assert p.shape == m.shape and (p >= 0).all() and (p <= 1).all()
    sums = p.reshape(len(p), -1).sum(1)
    assert (sums <= k + 1e-3).all()
    within = m.clamp(0, 1).reshape(len(m), -1).sum(1) <= k
    assert torch.equal(p[within], m.clamp(0, 1)[within])  # rows inside the budget stay put


# -- the loaders' shape handling -----------------------------------------------------------

dtypes = st.sampled_from([np.uint8, np.int8, np.int64, np.uint16, np.float32, np.bool_])
shapes = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5)


def arrays_of_any_kind() -> st.SearchStrategy[np.ndarray]:
    return dtypes.flatmap(lambda d: hnp.arrays(d, shapes))


def check_dataset(ds: Dataset) -> None:
    """What every loaded dataset promises."""
    c, h, w = ds.image_shape
    assert c in (1, 3) and h >= 1 and w >= 1
    for split in (ds.train, ds.test):
        assert len(split) >= 1 and split.labels.ndim == 1
        assert ((split.labels >= 0) & (split.labels < ds.num_classes)).all()
        x = split.load([0, len(split) - 1])
        assert x.dtype == torch.float32 and x.shape == (2, c, h, w)
        assert (x >= 0).all() and (x <= 1).all()
    assert set(np.unique(ds.train.labels)) == set(range(ds.num_classes))


@st.composite
def npz_arrays(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """Mostly plausible datasets with some arrays of random dtype and shape."""
    n, m, h, w = (draw(st.integers(1, 6)) for _ in range(4))
    layout = draw(st.sampled_from([(), (1,), (3,)]))
    arrays = {
        "x_train": draw(hnp.arrays(np.uint8, (n, h, w, *layout))),
        "y_train": draw(hnp.arrays(np.int64, n, elements=st.integers(-1, 3))),
        "x_test": draw(hnp.arrays(np.uint8, (m, h, w, *layout))),
        "y_test": draw(hnp.arrays(np.int64, m, elements=st.integers(-1, 3))),
    }
    for key in draw(st.sets(st.sampled_from([*arrays, "class_names"]), max_size=2)):
        arrays[key] = draw(arrays_of_any_kind())
    return arrays


@pytest.fixture(scope="module")
def scratch() -> Path:
    """A folder reused across hypothesis examples (function fixtures are not reset per example)."""
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@budget(150)
@given(npz_arrays())
def test_npz_arrays_of_any_shape_load_or_are_refused(scratch: Path, arrays) -> None:
    path = scratch / "set.npz"
    np.savez(path, **arrays)
    try:
        ds = load_data(path)
    except UsageError as e:
        assert "\n" not in str(e)
        return
    check_dataset(ds)


@budget(100)
@given(arrays_of_any_kind(), arrays_of_any_kind())
def test_array_splits_take_any_arrays_or_refuse_them(images: np.ndarray,
                                                     labels: np.ndarray) -> None:
    try:
        ds = Dataset("random", ArraySplit(images, labels), ArraySplit(images, labels))
    except UsageError:
        return
    check_dataset(ds)


# -- random and mutated bytes into every loader -------------------------------------------

def mutate(seed: bytes) -> st.SearchStrategy[bytes]:
    """``seed`` with a few bytes overwritten, deleted or inserted."""
    edit = st.tuples(st.integers(0, max(0, len(seed) - 1)),
                     st.sampled_from(["set", "delete", "insert"]),
                     st.binary(min_size=1, max_size=16))

    def apply(edits: list[tuple[int, str, bytes]]) -> bytes:
        data = bytearray(seed)
        for at, op, chunk in edits:
            at = min(at, len(data))
            if op == "set":
                data[at:at + len(chunk)] = chunk
            elif op == "delete":
                del data[at:at + len(chunk)]
            else:
                data[at:at] = chunk
        return bytes(data)

    return st.lists(edit, min_size=1, max_size=8).map(apply)


def fuzzed(seed: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, ``seed`` cut short, or ``seed`` mutated."""
    return st.one_of(st.binary(max_size=512),
                     st.integers(0, len(seed)).map(lambda n: seed[:n]),
                     mutate(seed))


def encoded(fmt: str, mode: str) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buf, format=fmt)
    return buf.getvalue()


IMAGES = [encoded(fmt, mode) for fmt, mode in [
    ("PNG", "L"), ("PNG", "RGBA"), ("PNG", "P"), ("GIF", "P"), ("BMP", "RGB"),
    ("TIFF", "RGB"), ("JPEG", "RGB"), ("WEBP", "RGB")]]


@budget(300)
@given(st.sampled_from(IMAGES).flatmap(fuzzed))
def test_damaged_images_are_refused(scratch: Path, data: bytes) -> None:
    path = scratch / "image.png"
    path.write_bytes(data)
    split = FolderSplit([str(path)], np.array([0]), "RGB", (8, 8), scratch, resize=False)
    resized = FolderSplit([str(path)], np.array([0]), "L", (4, 4), scratch, resize=True)
    for s in (split, resized):
        try:
            x = s.load([0])
        except UsageError as e:
            assert "\n" not in str(e)
            continue
        assert x.shape == (1, *s.image_shape) and (x >= 0).all() and (x <= 1).all()


@pytest.fixture(scope="module")
def image_folder(scratch: Path) -> Path:
    """A valid two-class image folder; the fuzz test overwrites train/a/0.png."""
    root = scratch / "folder"
    for split in ("train", "test"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            (root / split / label / "0.png").write_bytes(IMAGES[0])
    return root


@budget(100)
@given(st.sampled_from(IMAGES).flatmap(fuzzed))
def test_image_folders_with_a_damaged_image_load_or_are_refused(image_folder: Path,
                                                                data: bytes) -> None:
    (image_folder / "train" / "a" / "0.png").write_bytes(data)
    try:
        ds = load_data(image_folder)
        check_dataset(ds)
    except UsageError as e:
        assert "\n" not in str(e)


def npz_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.array([0, 1]),
                        x_test=np.zeros((2, 4, 4), np.uint8), y_test=np.array([1, 0]),
                        class_names=np.array(["a", "b"]))
    return buf.getvalue()


@budget(300)
@given(fuzzed(npz_bytes()))
def test_damaged_npz_files_are_refused(scratch: Path, data: bytes) -> None:
    path = scratch / "damaged.npz"
    path.write_bytes(data)
    try:
        check_dataset(load_data(path))
    except UsageError as e:
        assert "\n" not in str(e)


CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
leaves = st.one_of(st.none(), st.integers(-3, 300), st.text(max_size=3), st.binary(max_size=3),
                   hnp.arrays(st.sampled_from([np.uint8, np.int64, np.float32]),
                              hnp.array_shapes(min_dims=0, max_dims=2, max_side=4)))
pickled_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4), max_leaves=8)


@st.composite
def cifar_batches(draw: st.DrawFn) -> bytes:
    """A pickled batch: valid, with one entry replaced by random structure, or mutated bytes."""
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    kind = draw(st.sampled_from(["entry", "bytes"]))
    if kind == "entry":
        batch[draw(st.sampled_from([b"data", b"labels", "data"]))] = draw(pickled_values)
        return pickle.dumps(batch)
    return draw(fuzzed(pickle.dumps(batch)))


@pytest.fixture(scope="module")
def cifar_folder(scratch: Path) -> Path:
    root = scratch / "cifar"
    root.mkdir()
    good = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    for name in CIFAR_FILES:
        (root / name).write_bytes(good)
    return root


@budget(200)
@given(cifar_batches(), pickled_values)
def test_damaged_cifar_folders_are_refused(cifar_folder: Path, batch: bytes, names) -> None:
    (cifar_folder / "test_batch").write_bytes(batch)
    (cifar_folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    try:
        check_dataset(load_data(cifar_folder))
    except UsageError as e:
        assert "\n" not in str(e)


def model_files() -> dict[str, bytes]:
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    scripted, weights = io.BytesIO(), io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(net), scripted)
    torch.save(net.state_dict(), weights)
    return {".ts": scripted.getvalue(), ".pt": weights.getvalue(),
            ".safetensors": save_safetensors(dict(net.state_dict()))}


MODEL_FILES = model_files()


@budget(150)
@given(st.sampled_from(sorted(MODEL_FILES)).flatmap(
    lambda suffix: st.tuples(st.just(suffix), fuzzed(MODEL_FILES[suffix]))))
def test_damaged_model_and_weight_files_are_refused(scratch: Path, drawn) -> None:
    suffix, data = drawn
    path = scratch / f"model{suffix}"
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if suffix == ".ts":
                load_model(path, device="cpu")
            else:
                load_weights(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), path)
    except UsageError as e:
        assert "\n" not in str(e)
