"""Tensor operations of the search: blend, stamp, top-k, the pixel budget and its projection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from classwise.errors import UsageError
from classwise.search.ops import (
    blend,
    pixel_ranks,
    pixels_for_budget,
    project_budget,
    stamp,
    tie_order,
    ties_at_cut,
    topk_mask,
)

FAST = settings(max_examples=60, deadline=None)


def masks_of(values) -> st.SearchStrategy:
    """Float32 masks (R, H, W) of small sizes drawn from ``values``."""
    shapes = st.tuples(st.integers(1, 3), st.integers(2, 5), st.integers(2, 5))
    return shapes.flatmap(lambda s: arrays(np.float32, s, elements=values))


def test_stamp_replaces_exactly_the_pattern_in_every_channel():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 4, 4, generator=gen)
    canvas = torch.rand(3, 4, 4, generator=gen)
    pattern = torch.zeros(4, 4, dtype=torch.bool)
    pattern[0, 1] = pattern[2, 3] = pattern[3, 0] = True
    before = x.clone()
    out = stamp(x, canvas, pattern)
    assert torch.equal(out[:, :, pattern], canvas[:, pattern].expand(5, -1, -1))
    assert torch.equal(out[:, :, ~pattern], x[:, :, ~pattern])
    assert torch.equal(x, before)


def test_blend_is_mask_weighted_mix():
    canvas = torch.full((1, 1, 2, 2), 1.0)
    x = torch.zeros(1, 3, 1, 2, 2)
    mask = torch.tensor([[[0.0, 0.25], [0.5, 1.0]]])
    out = blend(mask, canvas, x)
    assert out.shape == (1, 3, 1, 2, 2)
    assert torch.equal(out[0, :, 0], mask.expand(3, 2, 2))


def topk_by_reference(scores: np.ndarray, k: int) -> np.ndarray:
    """Highest scores first, ties to the earlier pixel in row-major order."""
    flat = scores.reshape(len(scores), -1)
    out = np.zeros(flat.shape, bool)
    for r, row in enumerate(flat):
        out[r, np.lexsort((np.arange(row.size), -row))[:k]] = True
    return out.reshape(scores.shape)


@FAST
@given(masks_of(st.sampled_from([0.0, 0.25, 0.5, 1.0])), st.data())
def test_topk_keeps_k_highest_with_row_major_ties(scores, data):
    k = data.draw(st.integers(1, scores[0].size))
    keep = topk_mask(torch.from_numpy(scores), k).numpy()
    assert keep.dtype == bool and keep.shape == scores.shape
    assert (keep.reshape(len(keep), -1).sum(1) == k).all()
    np.testing.assert_array_equal(keep, topk_by_reference(scores, k))


def test_topk_tie_goes_to_earlier_pixel_when_nothing_else_settles_it():
    keep = topk_mask(torch.tensor([[[0.5, 0.5], [0.9, 0.5]]]), 2)
    assert keep.tolist() == [[[True, False], [True, False]]]


def tied_mask() -> torch.Tensor:
    """8x8: four pixels at 0.9, thirty tied at 0.7 (from the top left), the rest below."""
    mask = torch.linspace(0.0, 0.3, 64)
    mask[:30] = 0.7
    mask[[40, 45, 50, 63]] = 0.9
    return mask.view(1, 8, 8)


def test_ties_at_the_cut_go_to_a_seeded_random_order_not_the_top_rows():
    mask, k = tied_mask(), 10
    order = tie_order(0, torch.tensor([3]), (8, 8))
    keep = topk_mask(mask, k, order)[0].flatten()
    assert keep[[40, 45, 50, 63]].all()  # every strictly larger pixel is kept
    tied = torch.nonzero(keep[:30]).flatten()
    assert len(tied) == 6 and tied.tolist() != list(range(6))  # not the first six in rows
    again = topk_mask(mask, k, tie_order(0, torch.tensor([3]), (8, 8)))[0].flatten()
    assert torch.equal(keep, again)  # the same for the same seed
    other = topk_mask(mask, k, tie_order(1, torch.tensor([3]), (8, 8)))[0].flatten()
    assert not torch.equal(keep, other)
    assert ties_at_cut(mask[0], k) == 30


def test_the_last_value_before_the_clip_ranks_first_among_pixels_tied_at_one():
    mask = torch.full((1, 2, 3), 1.0)
    mask[0, 1, 2] = 0.4
    preclip = torch.tensor([[[1.0, 1.02, 1.0], [1.04, 1.0, 0.4]]])
    order = torch.arange(6.0).view(1, 2, 3)  # would favour the later pixels
    ranks = pixel_ranks(mask, preclip, order)[0]
    assert ranks.flatten().tolist() == [4, 1, 3, 0, 2, 5]
    assert topk_mask(mask, 2, preclip, order)[0].flatten().tolist() == \
        [False, True, False, True, False, False]


@pytest.mark.parametrize("budget, pixels, size, want", [
    (0.05, None, 32, 51),     # 51.2 -> 51, the paper's ~50 of 32x32
    (0.1, None, 8, 6),        # 6.4 -> 6
    (0.12, None, 8, 8),       # 7.68 -> 8
    (None, None, 8, 3),       # default 5%: 3.2 -> 3
    (1e-6, None, 8, 1),       # never below one pixel
    (0.999, None, 8, 63),     # never the whole image
    (None, 4, 8, 4),
    (None, 63, 8, 63),
])
def test_pixels_for_budget(budget, pixels, size, want):
    assert pixels_for_budget(budget, pixels, size, size) == want


@pytest.mark.parametrize("budget, pixels, words", [
    (0.0, None, "out of range"), (1.0, None, "out of range"), (-0.1, None, "out of range"),
    (1.5, None, "out of range"), (None, 0, "out of range"), (None, 64, "out of range"),
    (None, -3, "out of range"), (0.1, 4, "not both"),
])
def test_pixels_for_budget_refuses(budget, pixels, words):
    with pytest.raises(UsageError, match=words) as err:
        pixels_for_budget(budget, pixels, 8, 8)
    assert "\n" not in str(err.value)


@FAST
@given(masks_of(st.floats(-1.0, 2.0, width=32)), st.data())
def test_project_budget_lands_inside(mask, data):
    n = mask[0].size
    k = data.draw(st.floats(1.0, n - 1.0))
    out = project_budget(torch.from_numpy(mask), k).numpy()
    assert out.shape == mask.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    sums = out.reshape(len(out), -1).sum(1)
    assert (sums <= k + 1e-4).all()
    clipped = np.clip(mask, 0, 1)
    for row, orig, total, inside in zip(out, mask, sums,
                                        clipped.reshape(len(mask), -1).sum(1) <= k, strict=True):
        if inside:
            np.testing.assert_array_equal(row, np.clip(orig, 0, 1))
        else:
            # The Euclidean projection shifts every entry by one tau, then clips; it spends
            # the whole budget.
            assert total == pytest.approx(k, abs=1e-3)
            free = (row > 1e-6) & (row < 1 - 1e-6)
            shift = (orig - row)[free]
            if shift.size:
                assert np.ptp(shift) < 1e-4 and shift.min() > -1e-4


@FAST
@given(masks_of(st.floats(0.0, 1.0, width=32)))
def test_project_budget_leaves_feasible_masks_alone(mask):
    k = float(mask.reshape(len(mask), -1).sum(1).max()) + 0.5
    out = project_budget(torch.from_numpy(mask), k)
    assert torch.equal(out, torch.from_numpy(mask))


def test_project_budget_rows_are_independent():
    gen = torch.Generator().manual_seed(1)
    masks = torch.rand(4, 6, 6, generator=gen) * 1.5 - 0.2
    together = project_budget(masks, 5.0)
    for i in range(4):
        np.testing.assert_allclose(together[i:i + 1].numpy(),
                                   project_budget(masks[i:i + 1], 5.0).numpy(), atol=1e-7)
