"""Canvases, search images and evaluation images never meet."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import digits, recording_digits, tiny_model

from classwise.reveal import reveal
from classwise.reveal.pools import CANVAS_SHARE, SplitBank, partition
from classwise.search.rows import RowSampler


def test_partition_is_disjoint_covering_and_per_class():
    labels = digits().train.labels
    pools = partition(labels)
    assert np.intersect1d(pools.canvas, pools.search).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([pools.canvas, pools.search])),
                                  np.arange(len(labels)))
    for c in range(10):
        n = (labels == c).sum()
        assert len(pools.canvas_candidates(labels, c)) == round(CANVAS_SHARE * n)
        assert (labels[pools.canvas_candidates(labels, c)] == c).all()
    again = partition(labels)
    np.testing.assert_array_equal(again.canvas, pools.canvas)


def test_partition_keeps_a_canvas_for_a_tiny_class():
    pools = partition(np.array([0, 0, 0, 0, 0, 1]))
    assert list(pools.canvas_candidates(np.array([0, 0, 0, 0, 0, 1]), 1)) == [5]


def test_row_sampler_streams_only_the_positions_it_is_given():
    labels = digits().train.labels[partition(digits().train.labels).search]
    others = np.flatnonzero(labels != 4)
    sampler = RowSampler(others, seed=0, target=4, slot=0, val_images=50)
    drawn = np.concatenate([sampler.next(32) for _ in range(60)])  # > one epoch
    for idx in (drawn, sampler.val):
        assert np.isin(idx, others).all()
        assert (labels[idx] != 4).all()
    assert np.intersect1d(sampler.val, sampler.train).size == 0
    assert np.intersect1d(drawn, sampler.val).size == 0


@pytest.fixture(scope="module")
def spied_run():
    """A reveal of classes 0 and 5 that records every sampler, batch and search image it
    touched (as indices of the training split)."""
    made, drawn, loaded = {}, [], []
    init, nxt, take = RowSampler.__init__, RowSampler.next, SplitBank.take

    def spy_init(self, indices, seed, target, *args, **kwargs):
        init(self, indices, seed, target, *args, **kwargs)
        made[id(self)] = (target, self)

    def spy_next(self, batch_size):
        batch = nxt(self, batch_size)
        drawn.append((id(self), batch))
        return batch

    def spy_take(self, positions):
        loaded.append(self.indices[np.asarray(positions).reshape(-1)])
        return take(self, positions)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RowSampler, "__init__", spy_init)
        mp.setattr(RowSampler, "next", spy_next)
        mp.setattr(SplitBank, "take", spy_take)
        data = recording_digits()
        result = reveal(tiny_model(), data, classes="0,5", pixels=4, show_progress=False,
                        canvas_candidates=3, max_steps=10)
    return result, data, made, drawn, loaded


def test_reveal_takes_canvases_from_the_canvas_pool(spied_run):
    result, data, *_ = spied_run
    labels = data.train.labels
    pools = partition(labels)
    for i, rec in enumerate(result.records):
        assert rec["canvas_split"] == "train"
        assert rec["canvas_index"] in pools.canvas_candidates(labels, rec["class"])
        np.testing.assert_array_equal(result.canvases[i],
                                      data.train.load([rec["canvas_index"]])[0].numpy())


def test_reveal_searches_other_classes_of_the_search_pool_only(spied_run):
    _, data, made, drawn, loaded = spied_run
    labels = data.train.labels
    pools = partition(labels)
    assert {t for t, _ in made.values()} == {0, 5} and drawn
    for key, batch in drawn:  # the streams hold positions in the search pool
        target, _ = made[key]
        assert (labels[pools.search[batch]] != target).all()
    for target, sampler in made.values():
        assert len(sampler.val) > 0 and (labels[pools.search[sampler.val]] != target).all()
    assert np.isin(np.concatenate(loaded), pools.search).all()
    # and every training image the run read is a search image or a canvas candidate
    assert np.isin(data.train.all_loaded(), np.concatenate([pools.search, pools.canvas])).all()


def test_reveal_measures_on_the_test_split(spied_run):
    """Every test image of another class is measured for each class."""
    _, data, *_ = spied_run
    tested = data.test.all_loaded()
    for target in (0, 5):
        assert np.isin(np.flatnonzero(data.test.labels != target), tested).all()
