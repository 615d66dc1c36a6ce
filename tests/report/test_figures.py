"""Pictures of class-wise patterns: files, sizes, grey and colour, the pattern on white."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from classwise.errors import UsageError
from classwise.report.figures import (
    GREY_BACKGROUND,
    HIT_COLOUR,
    Examples,
    anomaly_figure,
    budget_curve_figure,
    examples_picture,
    overview_figure,
    pattern_picture,
    save_class_pictures,
)


def _arrays(n: int, channels: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    canvases = rng.random((n, channels, size, size), dtype=np.float32)
    masks = rng.random((n, size, size), dtype=np.float32) * 1.5
    patterns = masks > np.quantile(masks, 0.95, axis=(1, 2), keepdims=True)
    return canvases, masks, patterns


def _examples(channels: int, size: int, m: int = 4, target: int = 2) -> Examples:
    rng = np.random.default_rng(1)
    before = rng.random((m, channels, size, size), dtype=np.float32)
    return Examples(before, before[::-1].copy(), np.arange(m), np.array([target, 0, target, 1]),
                    ["zero", "one", "two", "<three>"], target)


def _rendered_size(fig: Figure) -> tuple[int, int]:
    fig.canvas.draw()
    return fig.canvas.get_width_height()


@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32), (3, 9)])
def test_class_pictures_written_and_upscaled(tmp_path, channels, size):
    canvases, masks, patterns = _arrays(1, channels, size)
    written = save_class_pictures(tmp_path / "class_3", canvases[0], masks[0], patterns[0],
                                  _examples(channels, size))
    assert sorted(p.name for p in written) == ["canvas.png", "examples.png", "mask.png",
                                               "pattern.png"]
    for path in written:
        with Image.open(path) as picture:
            picture.load()
            assert min(picture.size) >= 128, path.name
            assert np.asarray(picture).std() > 0, path.name
    with Image.open(tmp_path / "class_3" / "canvas.png") as picture:
        assert picture.size[0] % size == 0  # a whole nearest-neighbour factor
        assert picture.mode == ("L" if channels == 1 else "RGB")
    with Image.open(tmp_path / "class_3" / "pattern.png") as picture:
        assert picture.mode == "RGB"
    with Image.open(tmp_path / "class_3" / "examples.png") as picture:
        assert picture.width > picture.height  # two rows, four columns


def test_without_examples_no_examples_png(tmp_path):
    canvases, masks, patterns = _arrays(1, 3, 16)
    save_class_pictures(tmp_path, canvases[0], masks[0], patterns[0])
    assert not (tmp_path / "examples.png").exists()
    assert (tmp_path / "pattern.png").exists()


def test_pattern_png_is_canvas_on_white(tmp_path):
    canvas = np.full((3, 8, 8), 0.2, dtype=np.float32)
    pattern = np.zeros((8, 8), dtype=bool)
    pattern[2, 5] = True
    save_class_pictures(tmp_path, canvas, np.zeros((8, 8)), pattern)
    with Image.open(tmp_path / "pattern.png") as picture:
        pixels = np.asarray(picture)
    factor = pixels.shape[0] // 8
    assert (pixels[2 * factor, 5 * factor] == round(0.2 * 255)).all()
    white = np.ones((8, 8), dtype=bool)
    white[2, 5] = False
    assert (pixels[::factor, ::factor][white] == 255).all()


def test_pattern_picture_grey_on_pale_background_and_shape_check():
    canvas = np.ones((1, 4, 4), dtype=np.float32)  # white strokes must stay visible
    pattern = np.eye(4, dtype=bool)
    shown = pattern_picture(canvas, pattern)
    assert shown.shape == (3, 4, 4)
    assert (shown[:, pattern] == 1).all()
    assert np.allclose(shown[:, ~pattern], np.array(GREY_BACKGROUND)[:, None])
    assert (shown[:, ~pattern] < 1).any(axis=0).all()
    with pytest.raises(UsageError, match="does not match"):
        pattern_picture(canvas, np.eye(3, dtype=bool))


def test_overview_wraps_after_ten_columns():
    canvases, masks, patterns = _arrays(13, 3, 12)
    fig = overview_figure(canvases, masks, patterns, [f"{i} · pp 0.5" for i in range(13)])
    image_axes = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(image_axes) == 3 * 13
    width, height = _rendered_size(fig)
    assert height > width / 2  # two row groups of three rows
    small = overview_figure(*_arrays(4, 1, 12), [str(i) for i in range(4)])
    assert sum(1 for ax in small.axes if ax.get_title()) == 4


def test_overview_rejects_mismatched_input():
    canvases, masks, patterns = _arrays(3, 3, 12)
    with pytest.raises(UsageError, match="titles"):
        overview_figure(canvases, masks, patterns, ["a", "b"])
    with pytest.raises(UsageError, match="C = 1 or 3"):
        overview_figure(canvases[:, :2], masks, patterns, ["a", "b", "c"])


def test_examples_frame_the_stamped_images_read_as_the_target():
    examples = _examples(3, 10)  # predictions after stamping: two, zero, two, one
    picture = np.asarray(examples_picture(examples))
    green = np.array([int(HIT_COLOUR[i:i + 2], 16) for i in (1, 3, 5)])
    cell = 100  # 10 px upscaled to 100, 6 px apart, after a 58 px margin
    for i, pred in enumerate(examples.pred_after):
        left = 58 + i * (cell + 6)
        frame = picture[2 * 16 + cell + 6 + 50, left - 1]  # the stamped row's left edge
        assert (frame == green).all() == (pred == examples.target), i
        assert not (picture[16 + 50, left - 1] == green).all()  # "before" never framed


def test_budget_and_anomaly_figures():
    fig = budget_curve_figure([10, 50, 200], {"mean": [0.1, 0.5, 0.9], "3": [0.2, 0.4, 0.95]})
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_xscale() == "log"
    with pytest.raises(UsageError, match="one value per budget"):
        budget_curve_figure([10, 50], {"mean": [0.1]})
    fig = anomaly_figure([0, 1, 2], ["a", "b", "c"], [0.5, 3.1, -0.2], 2.0, [1])
    bars = fig.axes[0].patches
    assert len(bars) == 3
    assert bars[1].get_facecolor() != bars[0].get_facecolor() == bars[2].get_facecolor()
    fig = anomaly_figure([0, 1, 2], ["a", "b", "c"], [0.5, float("inf"), -0.2], 2.0, [1])
    assert fig.axes[0].patches[1].get_height() > 2.0 and fig.axes[0].patches[1].get_hatch()
    fig.canvas.draw()  # draws without a non-finite bar


def test_the_dense_figure_draws_a_row_per_family_and_titles_the_flagged_class_red():
    from classwise.report.figures import FLAG_COLOUR, dense_figure

    gen = np.random.default_rng(0)
    fig = dense_figure({"additive": gen.normal(size=(3, 1, 8, 8)),
                        "warp": gen.normal(size=(3, 2, 4, 4))}, ["0", "1", "2"], [1])
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 6
    assert [ax.get_title() for ax in images[:3]] == ["0", "1", "2"]
    assert images[1].title.get_color() == FLAG_COLOUR
    with pytest.raises(UsageError, match="one pattern per class of 3 classes"):
        dense_figure({"warp": gen.normal(size=(2, 2, 4, 4))}, ["0", "1", "2"], [])
