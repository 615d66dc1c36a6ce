"""The tensor-level verb: tensors in, tensors out, one pattern per row, composable parts."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from helpers import digits, tiny_model

import classwise
from classwise.errors import UsageError
from classwise.reveal.pools import partition
from classwise.search import Objective, find_patterns, register_objective
from classwise.search.objectives import PaperObjective

QUICK = dict(max_steps=6, val_images=40, eval_every=3)


def mask_search(k: int, **settings):
    """The engine's search of the three rows of :func:`tensors` for ``k`` pixels, with the
    default preset's settings overridden by ``settings``; its config and engine too."""
    from classwise.search.config import make_config
    from classwise.search.engine import MaskSearch
    from classwise.search.find import Engine
    from classwise.search.rows import as_bank

    canvases, targets, images, labels = tensors()
    cfg = make_config("default", **settings)
    cpu = torch.device("cpu")
    bank = as_bank(images, cpu)
    engine = Engine(tiny_model(), as_bank(canvases, cpu), targets, bank, labels.numpy(),
                    seed=0, device=cpu)
    rows = engine.rows([0, 1, 2], cfg)
    search = MaskSearch(tiny_model(), rows, engine.start(rows, cfg, k), bank, cfg, k,
                        engine.order(rows))
    return search, cfg, engine


def tensors():
    """Canvases of classes 2, 2 and 5 from the canvas pool; the search pool as images."""
    data = digits()
    pools = partition(data.train.labels)
    canvas = [pools.canvas_candidates(data.train.labels, t)[0] for t in (2, 5)]
    second = pools.canvas_candidates(data.train.labels, 2)[1]
    canvases = data.train.load([canvas[0], second, canvas[1]])
    images = data.train.load(pools.search)
    return canvases, torch.tensor([2, 2, 5]), images, torch.from_numpy(
        data.train.labels[pools.search])


def test_one_pattern_of_exactly_pixels_per_row_that_fools_the_model():
    canvases, targets, images, labels = tensors()
    found = find_patterns(tiny_model(), canvases, targets, images, labels, pixels=6, seed=1,
                          max_steps=30, canvas_candidates=2)
    assert found.masks.shape == (3, 8, 8) and found.patterns.dtype == torch.bool
    assert found.patterns.flatten(1).sum(1).tolist() == [6, 6, 6]
    assert ((found.masks >= 0) & (found.masks <= 1)).all()
    best = found.best().tolist()
    assert best[1] == 2 and best[0] in (0, 1)  # one row per target, the targets in order
    with torch.no_grad():  # the pattern really moves other-class images to the target
        other = images[labels != 5][:200]
        stamped = torch.where(found.patterns[2], canvases[2], other)
        fooled = (tiny_model()(stamped).argmax(1) == 5).float().mean()
        before = (tiny_model()(other).argmax(1) == 5).float().mean()
    assert fooled > before + 0.2


def test_same_seed_same_result_another_seed_another():
    canvases, targets, images, labels = tensors()
    a, b, c = (find_patterns(tiny_model(), canvases, targets, images, labels, pixels=4,
                             seed=s, **QUICK) for s in (0, 0, 1))
    assert torch.equal(a.masks, b.masks) and torch.equal(a.patterns, b.patterns)
    assert not torch.equal(a.masks, c.masks)


def test_the_callers_global_random_state_is_left_alone():
    canvases, targets, images, labels = tensors()
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    find_patterns(tiny_model(), canvases, targets, images, labels, pixels=4, **QUICK)
    classwise.reveal(tiny_model(), digits(), classes="1", pixels=4, show_progress=False,
                     **QUICK)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1]) and random.getstate() == states[2]


def test_an_objective_registered_outside_the_package_is_searched_with():
    calls = []

    @register_objective("test-half-paper")
    class HalfPaper(Objective):
        """The paper's loss at half weight: the same sign steps, so the same masks."""

        def row_losses(self, logits, targets, masks):
            calls.append(len(masks))
            return 0.5 * PaperObjective(self.cfg).row_losses(logits, targets, masks)

    canvases, targets, images, labels = tensors()
    common = dict(preset="paper", max_steps=5, seed=0)
    toy = find_patterns(tiny_model(), canvases, targets, images, labels, pixels=4,
                        objective="test-half-paper", **common)
    paper = find_patterns(tiny_model(), canvases, targets, images, labels, pixels=4, **common)
    # one row a pass (paper), five steps, each target's first row (the paper's one canvas)
    assert calls == [1] * 2 * 5 and toy.searched.tolist() == [True, False, True]
    assert torch.equal(toy.masks, paper.masks)  # sign steps ignore the loss's scale


@pytest.mark.parametrize("case, match", [
    ("targets 2-D", "targets must be"), ("labels short", "labels must be"),
    ("canvases 3-D", "canvases must be"), ("sizes differ", "canvases are"),
    ("pixels 64", "pixels 64 is out of range"), ("unknown objective", "unknown objective"),
    ("unknown optimizer", "unknown optimizer"), ("unknown setting", "unknown search setting")])
def test_bad_input_is_one_usage_error(case, match):
    canvases, targets, images, labels = tensors()
    kwargs: dict = {"pixels": 4}
    if case == "targets 2-D":
        targets = targets[:, None]
    elif case == "labels short":
        labels = labels[:-1]
    elif case == "canvases 3-D":
        canvases = canvases[:, 0]
    elif case == "sizes differ":
        images = torch.zeros(len(images), 1, 9, 9)
    elif case == "pixels 64":
        kwargs["pixels"] = 64
    elif case == "unknown objective":
        kwargs["objective"] = "nope"
    elif case == "unknown optimizer":
        kwargs["optimizer"] = "nope"
    else:
        kwargs["stepsize"] = 0.1
    with pytest.raises(UsageError, match=match):
        find_patterns(tiny_model(), canvases, targets, images, labels, **kwargs)


def test_the_pattern_is_the_head_of_each_rows_ranking_and_its_ties_are_counted():
    from classwise.search.ops import ties_at_cut

    canvases, targets, images, labels = tensors()
    found = find_patterns(tiny_model(), canvases, targets, images, labels, pixels=5,
                          preset="paper", max_steps=20)  # sign steps: many tied values
    searched = found.searched  # each target's first row: the paper's one canvas
    assert torch.equal(found.patterns[searched], found.ranks[searched] < 5)
    assert sorted(found.ranks[0].flatten().tolist()) == list(range(64))
    assert found.ties[searched].tolist() == [ties_at_cut(m, 5) for m in found.masks[searched]]
    assert found.ties.max() > 1


def test_refinement_never_fools_fewer_held_out_images_than_the_pattern_it_starts_from():
    from classwise.search.engine import fooling_rate, refine

    search, cfg, engine = mask_search(5, max_steps=4, val_images=40, refine_rounds=6,
                                      refine_swaps=3)
    rows, bank = search.rows, search.images
    before = search.run()
    start = fooling_rate(tiny_model(), before.ranks < 5, rows, bank)
    after = refine(tiny_model(), rows, before, bank, cfg, 5, engine.order(rows))
    pattern = after.ranks < 5
    assert pattern.flatten(1).sum(1).tolist() == [5, 5, 5]
    assert (after.rates >= start).all()
    assert torch.equal(after.rates, fooling_rate(tiny_model(), pattern, rows, bank))
    assert torch.equal(after.masks, before.masks)  # only the cut moves


def test_successive_halving_leaves_out_the_worse_half_of_each_targets_finalists():
    # two rows of class 2, one of class 5
    search, _, _ = mask_search(4, halving=True, eval_every=2, max_steps=6, val_images=40,
                               patience=5)
    search.advance()
    assert search.active.tolist() == [0, 1, 2]
    search.advance()  # the first check: class 2 keeps the better of its two rows
    rates = search.best_rate.tolist()
    better = 0 if rates[0] >= rates[1] else 1
    assert search.active.tolist() == [better, 2]
