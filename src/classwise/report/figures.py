"""Pictures of class-wise patterns, drawn from numpy arrays.

Images are ``(C, H, W)`` floats in [0, 1] with ``C`` = 1 (grey) or 3 (colour). Figures are
built on :class:`matplotlib.figure.Figure` (Agg), so no pyplot state is shared between calls;
every file is written atomically through :mod:`classwise.fileio`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from classwise.errors import UsageError
from classwise.evaluation.measure import Examples
from classwise.fileio import write_bytes

if TYPE_CHECKING:
    from classwise.compare import CompareResult
    from classwise.results import RevealResult

MIN_PICTURE_SIZE = 128
HIT_COLOUR = "#1a9850"
FLAG_COLOUR = "#d73027"
PLAIN_COLOUR = "#6b8fb5"
MASK_CMAP = "inferno"
GREY_BACKGROUND = (0.56, 0.73, 0.91)
DPI = 150


def _image(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] as ``(H, W)`` (grey) or ``(H, W, 3)`` (colour), clipped."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise UsageError(f"images must be C x H x W with C = 1 or 3, got shape {image.shape}")
    image = np.clip(image, 0.0, 1.0)
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)


def pattern_picture(canvas: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """The pattern as the paper shows it: canvas values at pattern pixels, white elsewhere.

    Returns ``(3, H, W)``. A grey canvas gets a pale blue background instead of white, so
    that white pattern pixels (a digit's strokes) stay visible.
    """
    canvas = np.asarray(canvas, dtype=np.float32)
    pattern = np.asarray(pattern, dtype=bool)
    if pattern.shape != canvas.shape[1:]:
        raise UsageError(f"pattern shape {pattern.shape} does not match canvas "
                         f"{canvas.shape}; give an H x W boolean pattern")
    grey = canvas.shape[0] == 1
    background = np.asarray(GREY_BACKGROUND if grey else (1.0, 1.0, 1.0), dtype=np.float32)
    colour = np.repeat(canvas, 3, axis=0) if grey else canvas
    return np.where(pattern[None], colour, background[:, None, None])


def upscale(image: np.ndarray, min_size: int = MIN_PICTURE_SIZE) -> Image.Image:
    """``(C, H, W)`` in [0, 1] as a Pillow image, nearest-neighbour upscaled by a whole
    factor so that its shorter side is at least ``min_size`` pixels."""
    pixels = np.round(_image(image) * 255).astype(np.uint8)
    picture = Image.fromarray(pixels)
    factor = max(1, math.ceil(min_size / min(picture.size)))
    return picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST)


def save_image_png(path: str | Path, image: np.ndarray,
                   min_size: int = MIN_PICTURE_SIZE) -> None:
    """Write ``(C, H, W)`` in [0, 1] as an upscaled PNG (see :func:`upscale`)."""
    save_png(path, upscale(image, min_size))


def save_png(path: str | Path, picture: Image.Image) -> None:
    """Write a Pillow image as a PNG at ``path``, atomically."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    write_bytes(path, buffer.getvalue())


def _show(ax: Axes, image: np.ndarray) -> None:
    """Draw a ``(C, H, W)`` image on ``ax`` with square pixels and no ticks."""
    ax.imshow(_image(image), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _show_mask(ax: Axes, mask: np.ndarray, vmax: float):
    """Draw a mask heat map on ``ax`` from 0 to ``vmax``; returns the image for a colour bar."""
    shown = ax.imshow(mask, cmap=MASK_CMAP, vmin=0.0, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def _mask_top(masks: np.ndarray) -> float:
    """The top of the mask colour scale: 1 for masks in [0, 1], else their maximum."""
    return max(1.0, float(np.max(masks, initial=0.0)))


def mask_picture(mask: np.ndarray, min_size: int = MIN_PICTURE_SIZE) -> Image.Image:
    """A heat map of one ``(H, W)`` mask, upscaled, with its colour scale on the right."""
    from matplotlib import colormaps

    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim != 2:
        raise UsageError(f"a mask must be H x W, got shape {mask.shape}")
    top = _mask_top(mask)
    colours = colormaps[MASK_CMAP]
    heat = upscale(colours(np.clip(mask / top, 0, 1))[..., :3].transpose(2, 0, 1), min_size)
    scale = np.linspace(1, 0, heat.height)[:, None].repeat(10, axis=1)
    bar = Image.fromarray(np.round(colours(scale)[..., :3] * 255).astype(np.uint8))
    picture = Image.new("RGB", (heat.width + 44, heat.height), "white")
    picture.paste(heat, (0, 0))
    picture.paste(bar, (heat.width + 6, 0))
    draw = ImageDraw.Draw(picture)
    draw.text((heat.width + 19, 0), f"{top:g}", fill="black")
    draw.text((heat.width + 19, heat.height - 11), "0", fill="black")
    return picture


def _name(class_names: Sequence[str], index: int) -> str:
    index = int(index)
    return str(class_names[index]) if 0 <= index < len(class_names) else str(index)


def examples_picture(examples: Examples, size: int = 96) -> Image.Image:
    """Two rows, before and after stamping, each image captioned with its prediction.

    After-predictions equal to ``examples.target`` get a green caption and frame.
    """
    before, after = np.asarray(examples.before), np.asarray(examples.after)
    m = len(before)
    if before.ndim != 4 or after.shape != before.shape or m == 0:
        raise UsageError(f"examples need before and after of the same shape m x C x H x W with "
                         f"m >= 1, got {before.shape} and {after.shape}")
    if len(examples.pred_before) != m or len(examples.pred_after) != m:
        raise UsageError(f"examples need one prediction per image ({m}), got "
                         f"{len(examples.pred_before)} before and {len(examples.pred_after)} after")
    cells = [[upscale(image, size) for image in images] for images in (before, after)]
    width, height = cells[0][0].size
    margin, caption, gap = 58, 16, 6
    picture = Image.new("RGB", (margin + m * (width + gap), 2 * (height + caption + gap)),
                        "white")
    draw = ImageDraw.Draw(picture)
    for row, (images, preds) in enumerate(zip(cells, (examples.pred_before,
                                                      examples.pred_after), strict=True)):
        top = row * (height + caption + gap)
        draw.text((4, top + caption + height // 2 - 6), ("before", "stamped")[row],
                  fill="black")
        for i, cell in enumerate(images):
            left = margin + i * (width + gap)
            hit = row == 1 and examples.target is not None and int(preds[i]) == examples.target
            colour = HIT_COLOUR if hit else "#bbbbbb"
            draw.text((left, top + 2), _name(examples.class_names, preds[i])[:14],
                      fill=HIT_COLOUR if hit else "#333333")
            picture.paste(cell.convert("RGB"), (left, top + caption))
            draw.rectangle((left - 1, top + caption - 1, left + width, top + caption + height),
                           outline=colour, width=3 if hit else 1)
    return picture


def save_class_pictures(class_dir: str | Path, canvas: np.ndarray, mask: np.ndarray,
                        pattern: np.ndarray, examples: Examples | None = None) -> list[Path]:
    """Write ``canvas.png``, ``mask.png``, ``pattern.png`` (and ``examples.png`` when
    ``examples`` is given) into ``class_dir``; returns the paths written."""
    class_dir = Path(class_dir)
    written = [class_dir / "canvas.png", class_dir / "mask.png", class_dir / "pattern.png"]
    save_image_png(written[0], canvas)
    save_png(written[1], mask_picture(mask))
    save_image_png(written[2], pattern_picture(canvas, pattern))
    if examples is not None:
        written.append(class_dir / "examples.png")
        save_png(written[-1], examples_picture(examples))
    return written


def _check_stack(canvases: np.ndarray, masks: np.ndarray, patterns: np.ndarray,
                 titles: Sequence[str]) -> None:
    n = len(canvases)
    if canvases.ndim != 4 or masks.shape != (n, *canvases.shape[2:]) \
            or patterns.shape != masks.shape or len(titles) != n:
        raise UsageError(f"expected canvases n x C x H x W with masks and patterns n x H x W and "
                         f"n titles, got {canvases.shape}, {masks.shape}, {patterns.shape} and "
                         f"{len(titles)} titles")


def overview_figure(canvases: np.ndarray, masks: np.ndarray, patterns: np.ndarray,
                    titles: Sequence[str], columns: int = 10) -> Figure:
    """Every class in one grid: canvas, mask and pattern rows, ``columns`` classes per group.

    More than ``columns`` classes wrap into further row groups. Masks share one colour scale.
    """
    canvases, masks = np.asarray(canvases), np.asarray(masks, dtype=np.float32)
    patterns = np.asarray(patterns, dtype=bool)
    _check_stack(canvases, masks, patterns, titles)
    n = len(canvases)
    if n == 0:
        raise UsageError("nothing to draw: the run holds no classes")
    cols = min(n, columns)
    groups = math.ceil(n / cols)
    width, height = 1.15 * cols + 1.1, 3.5 * groups + 0.1
    fig = Figure(figsize=(width, height))
    # A fixed layout, margins in inches (a layout solver took twice the drawing time): each
    # group's three rows close together, a spacer row for the titles between groups.
    right = 1 - 0.75 / width
    grid = fig.add_gridspec(4 * groups - 1, cols, height_ratios=([1, 1, 1, 0.3] * groups)[:-1],
                            left=0.4 / width, right=right, top=1 - 0.4 / height,
                            bottom=0.05 / height, wspace=0.06, hspace=0.06)
    axes = np.array([[fig.add_subplot(grid[4 * group + row, col]) for col in range(cols)]
                     for group in range(groups) for row in range(3)])
    vmax = _mask_top(masks)
    for slot in range(groups * cols):
        group, col = divmod(slot, cols)
        canvas_ax, mask_ax, pattern_ax = axes[3 * group:3 * group + 3, col]
        if slot >= n:
            for ax in (canvas_ax, mask_ax, pattern_ax):
                ax.set_axis_off()
            continue
        _show(canvas_ax, canvases[slot])
        shown = _show_mask(mask_ax, masks[slot], vmax)
        _show(pattern_ax, pattern_picture(canvases[slot], patterns[slot]))
        canvas_ax.set_title(titles[slot], fontsize=8)
    for group in range(groups):
        for row, label in enumerate(("canvas", "mask", "pattern")):
            axes[3 * group + row, 0].set_ylabel(label, fontsize=9)
    box = axes[1, cols - 1].get_position()
    bar = fig.colorbar(shown, cax=fig.add_axes((right + 0.12 / width, box.y0 + 0.1 * box.height,
                                                0.1 / width, 0.8 * box.height)))
    bar.ax.tick_params(labelsize=7)
    return fig


def budget_curve_figure(budgets: Sequence[float],
                        powers: Mapping[str, Sequence[float]]) -> Figure:
    """Predictive power against pixel budget, one line per series (a series named ``mean``
    is drawn thick and black)."""
    budgets = np.asarray(budgets, dtype=float)
    if budgets.ndim != 1 or len(budgets) == 0 or not powers:
        raise UsageError("a budget curve needs a list of budgets and at least one series")
    fig = Figure(figsize=(5.0, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for label, values in powers.items():
        if len(values) != len(budgets):
            raise UsageError(f"series {label!r} has {len(values)} values for "
                             f"{len(budgets)} budgets; give one value per budget")
        mean = label == "mean"
        ax.plot(budgets, values, marker="o", markersize=4 if mean else 3, label=label,
                linewidth=2.5 if mean else 1.2, color="black" if mean else None,
                alpha=1.0 if mean else 0.8, zorder=3 if mean else 2)
    if budgets.min() > 0 and budgets.max() / budgets.min() >= 10:
        ax.set_xscale("log")
        ax.minorticks_off()
    ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("pattern budget (pixels)")
    ax.set_ylabel("predictive power")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=2 if len(powers) > 6 else 1, loc="center left",
              bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def flips_figure(panels: Mapping[str, tuple[Sequence[str], Sequence[str], np.ndarray]]
                 ) -> Figure:
    """Heat maps of what each pattern flips: per panel (title: target names, source names,
    a target x source matrix of shares with NaN where there is none), one cell per source
    class of test images, the share classified as the row's target once stamped."""
    widths = [max(3.0, 0.32 * len(sources) + 1.6) for _, sources, _ in panels.values()]
    height = max(2.6, 0.3 * max(len(t) for t, _, _ in panels.values()) + 1.4)
    fig = Figure(figsize=(sum(widths), height), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), width_ratios=widths, squeeze=False)[0])
    for ax, (title, (targets, sources, matrix)) in zip(axes, panels.items(), strict=True):
        shown = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=0, vmax=1,
                          aspect="auto", interpolation="nearest")
        ax.set_facecolor("#d9d9d9")
        small = len(sources) <= 20 and len(targets) <= 20
        ax.set_xticks(range(len(sources)), sources if small else [], rotation=90, fontsize=7)
        ax.set_yticks(range(len(targets)), targets if small else [], fontsize=7)
        ax.set_xlabel("source class (test images stamped)", fontsize=8)
        ax.set_ylabel("target class (the pattern's)", fontsize=8)
        ax.set_title(title, fontsize=9)
        if small:
            for (i, j), v in np.ndenumerate(matrix):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}"[1:] if v < 1 else "1", ha="center",
                            va="center", fontsize=5.5, color="white" if v < 0.6 else "black")
    fig.colorbar(shown, ax=list(axes), shrink=0.8, label="share flipped to the target")
    return fig


def class_labels(classes: Sequence[int], names: Sequence[str]) -> list[str]:
    """Each class as a chart labels it: its number, and its name where that differs."""
    return [str(c) if str(name) == str(c) else f"{c} {name}"
            for c, name in zip(classes, names, strict=True)]


def anomaly_figure(classes: Sequence[int], names: Sequence[str],
                   anomaly_index: Sequence[float], threshold: float,
                   flagged: Sequence[int]) -> Figure:
    """Anomaly index per class as bars, with the threshold line; flagged classes in red.

    An infinite index (a class with no spread around it) is drawn as a hatched bar above
    the rest, marked with an infinity sign.
    """
    if not len(classes) == len(names) == len(anomaly_index) or len(classes) == 0:
        raise UsageError(f"anomaly figure needs one name and index per class, got "
                         f"{len(classes)} classes, {len(names)} names, "
                         f"{len(anomaly_index)} indices")
    flagged = {int(c) for c in flagged}
    colours = [FLAG_COLOUR if int(c) in flagged else PLAIN_COLOUR for c in classes]
    labels = class_labels(classes, names)
    fig = Figure(figsize=(max(4.0, 0.45 * len(classes) + 1.5), 3.2), layout="constrained")
    ax = fig.add_subplot()
    values = np.asarray(anomaly_index, dtype=float)
    infinite = np.isinf(values)
    top = 1.25 * max(float(threshold), np.max(np.abs(values[~infinite]), initial=1.0))
    bars = ax.bar(range(len(classes)), np.where(infinite, np.sign(values) * top, values),
                  color=colours)
    for bar in np.asarray(bars.patches)[infinite]:
        bar.set_hatch("//")
        ax.annotate("\u221e", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom" if bar.get_height() > 0 else "top", fontsize=11)
    ax.margins(y=0.12)
    ax.axhline(threshold, color=FLAG_COLOUR, linestyle="--", linewidth=1.2,
               label=f"threshold {threshold:g}")
    ax.set_xticks(range(len(classes)), labels, rotation=45 if len(classes) > 6 else 0,
                  ha="right" if len(classes) > 6 else "center", fontsize=8)
    ax.set_ylabel("anomaly index")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def compare_figure(result: CompareResult) -> Figure:
    """A row per class; per run a canvas and a pattern column, titled with the run's
    label and mean predictive power. A class a run did not search is left blank."""
    classes = result.classes
    power = result.means().get("predictive_power", [None] * len(result.runs))
    fig = Figure(figsize=(2.3 * len(result.runs) + 0.4, 1.1 * len(classes) + 0.7),
                 layout="constrained")
    for j, (sub, run) in enumerate(zip(np.atleast_1d(fig.subfigures(1, len(result.runs))),
                                       result.runs, strict=True)):
        mean = "–" if power[j] is None else f"{power[j]:.2f}"
        sub.suptitle(f"{result.labels[j]}\nmean pp {mean}", fontsize=9)
        axes = sub.subplots(len(classes), 2, squeeze=False)
        index = {int(c): i for i, c in enumerate(run.classes)}
        for row, c in enumerate(classes):
            _draw_cell(axes[row], run, index.get(c), result.record(run, c))
            if j == 0:
                axes[row, 0].set_ylabel(result.name(c), fontsize=8)
        axes[0, 0].set_title("canvas", fontsize=8)
        axes[0, 1].set_title("pattern", fontsize=8)
    return fig


def _draw_cell(axes: Sequence[Any], run: RevealResult, i: int | None,
               record: dict[str, Any] | None) -> None:
    """Canvas and pattern of pattern ``i`` of ``run`` on two axes (blank when ``i`` is None)."""
    if i is None:
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_frame_on(False)
        axes[1].set_xlabel("not searched", fontsize=7, labelpad=1)
        return
    canvas = run.canvases[i]
    _show(axes[0], canvas)
    _show(axes[1], pattern_picture(canvas, run.patterns[i]))
    power = (record or {}).get("predictive_power")
    axes[1].set_xlabel("pp –" if power is None else f"pp {power:.2f}", fontsize=7, labelpad=1)


def dense_figure(families: Mapping[str, np.ndarray], labels: Sequence[str],
                 flagged: Sequence[int]) -> Figure:
    """Each dense family's kept pattern per class: a row per family, a column per class
    (``labels``; the columns at positions ``flagged`` titled in red). An additive pattern
    (classes, C, g, g) is drawn as its lattice's change of value, the channels' mean (red
    up, blue down); a warp (classes, 2, g, g) as the length of each lattice point's
    displacement, in pixels. Each row shares one colour scale."""
    if not families or any(len(p) != len(labels) for p in families.values()):
        raise UsageError(f"dense figure needs one pattern per class of {len(labels)} classes "
                         f"in every family, got {({f: len(p) for f, p in families.items()})}")
    fig = Figure(figsize=(1.1 * len(labels) + 1.6, 1.3 * len(families) + 0.4),
                 layout="constrained")
    axes = np.asarray(fig.subplots(len(families), len(labels), squeeze=False))
    flagged = {int(i) for i in flagged}
    for r, (row, (name, patterns)) in enumerate(zip(axes, families.items(), strict=True)):
        if name == "warp":
            shown, cmap, label = np.linalg.norm(patterns, axis=1), "magma", "warp (px)"
            vmin, vmax = 0.0, max(float(shown.max()), 1e-9)
        else:
            shown, cmap, label = patterns.mean(axis=1), "RdBu_r", f"{name} (change)"
            vmax = max(float(np.abs(shown).max()), 1e-9)
            vmin = -vmax
        for j, ax in enumerate(row):
            image = ax.imshow(shown[j], cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(labels[j], fontsize=8,
                             color=FLAG_COLOUR if j in flagged else "black")
        row[0].set_ylabel(name, fontsize=8)
        fig.colorbar(image, ax=list(row), shrink=0.9, label=label)
    return fig
