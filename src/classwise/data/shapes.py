"""``shapes``: a generated colour dataset of ten silhouettes with known object masks.

Each 32x32 RGB image shows one shape of random colour, size, position and rotation on a
random textured background (smooth colour noise, soft stripes or a gradient) that carries no
class information. ``object_masks`` mark the pixels the shape covers by at least half, so one
can check whether what a classifier reveals sits on the object or on the background.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from classwise.data.base import ArraySplit, Dataset
from classwise.seeding import rng as make_rng

SIZE = 32
_SCALE = 4                 # shapes are drawn at SIZE * _SCALE, then averaged down
_DIAMETER = (13.0, 22.0)   # pixels across the shape's circumscribing circle
_MARGIN = 1.0              # pixels kept free between that circle and the frame
_GRID = 4                  # control points per side of the smooth-noise background
_PERIOD = (4.0, 12.0)      # stripe period in pixels
_CANDIDATES = 16           # object colours tried per image
_MIN_CONTRAST = 0.3        # RGB distance (in [0, 1] units) kept from the nearby background
_MAX_CLOSE = 0.1           # fraction of nearby background pixels allowed closer than that
_NOISE = 0.03              # std of the pixel noise added to every image

Part = tuple[np.ndarray, bool]  # polygon (K, 2) in unit coordinates; True adds, False erases


def _regular(n: int, radius: float = 1.0, centre: tuple[float, float] = (0.0, 0.0),
             radii: tuple[float, ...] = (1.0,)) -> np.ndarray:
    """``n`` vertices on a circle, pointing up; ``radii`` cycles over them (for stars)."""
    angle = -np.pi / 2 + 2 * np.pi * np.arange(n) / n
    r = radius * np.resize(np.asarray(radii), n)
    return np.stack([centre[0] + r * np.cos(angle), centre[1] + r * np.sin(angle)], axis=1)


def _heart(n: int = 64) -> np.ndarray:
    """The classic parametric heart curve, point down (image y grows downwards)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return np.stack([x, -y], axis=1)


def _normalise(parts: tuple[Part, ...]) -> tuple[Part, ...]:
    """Centre the adding parts' bounding box on the origin and scale them into the unit disc."""
    points = np.concatenate([p for p, adds in parts if adds])
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    radius = np.linalg.norm(points - centre, axis=1).max()
    return tuple(((p - centre) / radius, adds) for p, adds in parts)


def _outlines() -> dict[str, tuple[Part, ...]]:
    """Each class's silhouette as polygons inside the unit disc."""
    arm, head = 0.3, 0.65
    cross = np.array([[-arm, -1], [arm, -1], [arm, -arm], [1, -arm], [1, arm], [arm, arm],
                      [arm, 1], [-arm, 1], [-arm, arm], [-1, arm], [-1, -arm], [-arm, -arm]])
    shaft = 0.25
    arrow = np.array([[-1, -shaft], [0.15, -shaft], [0.15, -head], [1, 0], [0.15, head],
                      [0.15, shaft], [-1, shaft]])
    disc = _regular(48)
    raw: dict[str, tuple[Part, ...]] = {
        "circle": ((disc, True),),
        "square": ((_regular(4), True),),
        "triangle": ((_regular(3), True),),
        "star": ((_regular(10, radii=(1.0, 0.45)), True),),
        "cross": ((cross, True),),
        "diamond": ((np.array([[0, -1], [0.6, 0], [0, 1], [-0.6, 0]]), True),),
        "ring": ((disc, True), (_regular(48, 0.52), False)),
        "crescent": ((disc, True), (_regular(48, 0.8, centre=(0.42, 0.0)), False)),
        "heart": ((_heart(), True),),
        "arrow": ((arrow, True),),
    }
    return {name: _normalise(parts) for name, parts in raw.items()}


_OUTLINES = _outlines()
SHAPE_NAMES: tuple[str, ...] = tuple(_OUTLINES)


def _coverage(parts: tuple[Part, ...], centre: np.ndarray, radius: float,
              angle: float) -> np.ndarray:
    """The fraction of each pixel the placed shape covers, float32 ``(SIZE, SIZE)``."""
    cos, sin = np.cos(angle), np.sin(angle)
    placement = radius * np.array([[cos, sin], [-sin, cos]])
    canvas = Image.new("L", (SIZE * _SCALE, SIZE * _SCALE), 0)
    draw = ImageDraw.Draw(canvas)
    for points, adds in parts:
        # Pillow puts integer coordinates at sub-pixel centres, hence the half-pixel shift.
        xy = (points @ placement + centre) * _SCALE - 0.5
        draw.polygon(xy.ravel().tolist(), fill=_SCALE**2 if adds else 0)
    # Filling with _SCALE**2 makes the box average the exact count of covered sub-pixels.
    return np.asarray(canvas.reduce(_SCALE), dtype=np.float32) / _SCALE**2


def _centred_coords() -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre x and y coordinates, origin at the image centre, in pixels."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5 - SIZE / 2
    return xx, yy


def _projection(angle: np.ndarray) -> np.ndarray:
    """Each pixel's coordinate along direction ``angle[i]``, ``(n, SIZE, SIZE)`` in pixels."""
    xx, yy = _centred_coords()
    return (np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy).astype(
        np.float32)


def _two_colour_blend(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Blend two random colours per image by weights ``t`` ``(n, SIZE, SIZE)`` in [0, 1]."""
    first, second = rng.random((2, len(t), 3, 1, 1), dtype=np.float32)
    return first + (second - first) * t[:, None]


def _smooth_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random colours on a coarse grid, bilinearly upsampled."""
    grid = rng.random((n, 3, _GRID, _GRID), dtype=np.float32)
    position = (np.arange(SIZE) + 0.5) / SIZE * (_GRID - 1)
    weights = np.maximum(0, 1 - np.abs(position[:, None] - np.arange(_GRID))).astype(np.float32)
    return weights @ grid @ weights.T


def _stripes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Soft sinusoidal stripes of two colours at a random angle, period and phase."""
    angle = rng.uniform(0, np.pi, n)
    period = rng.uniform(*_PERIOD, n)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    t = 0.5 + 0.5 * np.sin(2 * np.pi * _projection(angle) / period + phase)
    return _two_colour_blend(rng, t.astype(np.float32))


def _gradient(rng: np.random.Generator, n: int) -> np.ndarray:
    """A linear ramp between two colours across the image in a random direction."""
    angle = rng.uniform(0, 2 * np.pi, n)
    reach = (np.abs(np.cos(angle)) + np.abs(np.sin(angle)))[:, None, None] * SIZE / 2
    t = 0.5 + 0.5 * _projection(angle) / reach
    return _two_colour_blend(rng, t.astype(np.float32))


_BACKGROUNDS: tuple[Callable[[np.random.Generator, int], np.ndarray], ...] = (
    _smooth_noise, _stripes, _gradient)


def _backgrounds(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` backgrounds of random kind, float32 ``(n, 3, SIZE, SIZE)`` in [0, 1]."""
    kind = rng.integers(0, len(_BACKGROUNDS), n)
    out = np.empty((n, 3, SIZE, SIZE), dtype=np.float32)
    for k, make in enumerate(_BACKGROUNDS):
        idx = np.flatnonzero(kind == k)
        out[idx] = make(rng, len(idx))
    return out


def _contrasting_colour(rng: np.random.Generator, background: np.ndarray,
                        cover: np.ndarray) -> np.ndarray:
    """A random colour far from the background in and around the shape's bounding box.

    Of ``_CANDIDATES`` random colours, the first with at most ``_MAX_CLOSE`` of those
    background pixels within ``_MIN_CONTRAST`` of it; the one with fewest when none is.
    """
    rows = np.flatnonzero(cover.any(axis=1))
    cols = np.flatnonzero(cover.any(axis=0))
    near = background[:, max(rows[0] - 1, 0):rows[-1] + 2, max(cols[0] - 1, 0):cols[-1] + 2]
    candidates = rng.random((_CANDIDATES, 3), dtype=np.float32)
    squared = ((candidates[:, None] - near.reshape(3, -1).T[None]) ** 2).sum(axis=2)
    close = (squared < _MIN_CONTRAST**2).mean(axis=1)
    good = np.flatnonzero(close <= _MAX_CLOSE)
    return candidates[good[0] if good.size else close.argmin()]


def _make_split(rng: np.random.Generator, n: int) -> ArraySplit:
    """``n`` images, balanced over the classes in shuffled order, with their object masks."""
    labels = rng.permutation(np.arange(n) % len(SHAPE_NAMES))
    radius = rng.uniform(*_DIAMETER, n) / 2
    centre = rng.uniform(radius + _MARGIN, SIZE - radius - _MARGIN, (2, n)).T
    angle = rng.uniform(0, 2 * np.pi, n)
    images = _backgrounds(rng, n)
    masks = np.empty((n, SIZE, SIZE), dtype=bool)
    for i, label in enumerate(labels):
        cover = _coverage(_OUTLINES[SHAPE_NAMES[label]], centre[i], radius[i], angle[i])
        colour = _contrasting_colour(rng, images[i], cover)
        images[i] += (colour[:, None, None] - images[i]) * cover
        masks[i] = cover >= 0.5
    images += _NOISE * rng.standard_normal(images.shape, dtype=np.float32)
    pixels = np.clip(np.rint(images * 255), 0, 255).astype(np.uint8)
    return ArraySplit(pixels, labels, object_masks=masks)


def make_shapes(seed: int = 0, n_train: int = 5000, n_test: int = 1000) -> Dataset:
    """The ``shapes`` dataset: ``n_train`` and ``n_test`` 32x32 RGB images of ten shapes.

    Classes are :data:`SHAPE_NAMES`, balanced within each split. The same ``seed`` gives
    byte-identical images, labels and ``object_masks`` (bool ``(N, 32, 32)``); train and
    test come from separate random streams.
    """
    return Dataset(name="shapes",
                   train=_make_split(make_rng(seed, 0), n_train),
                   test=_make_split(make_rng(seed, 1), n_test),
                   class_names=list(SHAPE_NAMES))
