"""One seed, one answer: however the classes are batched, and every time."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import SMALL, digits, tiny_model

from classwise.results import RevealResult
from classwise.reveal import reveal


def run(seed: int = 0, classes: str = "0,1,2", **how) -> RevealResult:
    return reveal(tiny_model(), digits(), classes=classes, pixels=4, seed=seed,
                  show_progress=False, **SMALL, **how)


@pytest.fixture(scope="module")
def batched() -> RevealResult:
    """All three classes (with their canvas candidates) in one forward pass."""
    return run(classes_per_pass=None)


def same(a: RevealResult, b: RevealResult) -> bool:
    return (np.array_equal(a.patterns, b.patterns) and np.array_equal(a.masks, b.masks)
            and np.array_equal(a.canvases, b.canvases))


@pytest.mark.parametrize("how", [{"classes_per_pass": 1},
                                 {"classes_per_pass": None, "max_batch": 32}],
                         ids=["one-class-per-pass", "max-batch-one-row"])
def test_batching_does_not_change_the_patterns(batched, how):
    alone = run(**how)
    assert same(alone, batched)
    assert [r["canvas_index"] for r in alone.records] == \
        [r["canvas_index"] for r in batched.records]


def test_a_class_alone_gets_the_same_pattern(batched):
    alone = run(classes="1", classes_per_pass=None)
    np.testing.assert_array_equal(alone.masks[0], batched.masks[1])
    np.testing.assert_array_equal(alone.canvases[0], batched.canvases[1])


def test_same_seed_same_patterns(batched):
    assert same(run(classes_per_pass=None), batched)


def test_other_seed_other_patterns(batched):
    other = run(seed=1, classes_per_pass=None)
    assert not np.array_equal(other.masks, batched.masks)
    assert not np.array_equal(other.patterns, batched.patterns)
