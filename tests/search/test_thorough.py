"""The thorough preset: the default search and the top-down search, per class the pattern
that fools more held-out search images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import digits, tiny_model

from classwise.errors import UsageError
from classwise.reveal import reveal
from classwise.reveal.pools import partition
from classwise.search.config import make_config, make_plan, top_down
from classwise.search.find import FoundPatterns
from classwise.search.rows import RowSampler

K = 4
CLASSES = "2,5"


def held_out_rate(target: int, canvas: np.ndarray, pattern: np.ndarray, val_images: int) -> int:
    """Held-out search images of ``target``'s rows fooled by the stamped pattern, counted here."""
    data, model = digits(), tiny_model()
    search = partition(data.train.labels).search
    others = np.flatnonzero(data.train.labels[search] != target)
    val = RowSampler(others, 0, target, 0, val_images).val
    x = data.train.load(search[val])
    stamped = torch.where(torch.from_numpy(pattern), torch.from_numpy(canvas), x)
    with torch.no_grad():
        return int((model(stamped).argmax(1) == target).sum())


def test_each_class_keeps_the_search_that_fools_more_held_out_images():
    common = dict(classes=CLASSES, pixels=K, show_progress=False)
    model, data = tiny_model(), digits()
    thorough = reveal(model, data, preset="thorough", **common)
    default = reveal(model, data, preset="default", **common)
    topdown = reveal(model, data, preset="default", **top_down(make_config()).to_dict(),
                     **common)
    assert thorough.settings["searches"] == ["default", "top-down"]
    assert "search" not in default.records[0]  # only thorough runs say which search won
    val = make_config("thorough").val_images
    for i in range(2):
        t = int(thorough.classes[i])
        hits = [held_out_rate(t, r.canvases[i], r.patterns[i], val) for r in (default, topdown)]
        chosen = topdown if hits[1] > hits[0] else default
        assert thorough.records[i]["search"] == ("top-down" if hits[1] > hits[0] else "default")
        np.testing.assert_array_equal(thorough.patterns[i], chosen.patterns[i])
        np.testing.assert_array_equal(thorough.canvases[i], chosen.canvases[i])
        assert thorough.records[i]["predictive_power"] == chosen.records[i]["predictive_power"]


def found(rates, searched, rank, search, seconds) -> FoundPatterns:
    n = len(rates)
    return FoundPatterns(torch.tensor([0, 0, 1]), torch.arange(n * 4.0).view(n, 2, 2) + seconds,
                         torch.zeros(n, 2, 2, dtype=torch.bool), torch.tensor(rates),
                         torch.tensor(searched), [search] * n, torch.tensor(rank),
                         torch.full((n,), seconds, dtype=torch.float64),
                         torch.zeros(n, 2, 2, dtype=torch.long), torch.zeros(n, dtype=torch.long))


def test_a_later_search_wins_a_row_only_when_it_fools_more():
    first = found([0.5, 0.2, 0.4], [True, True, True], [0, 1, 0], "default", 1.0)
    later = found([0.6, 0.6, 0.4], [True, False, True], [1 << 30, 0, 1 << 30], "top-down", 2.5)
    merged = first.merged(later)
    assert merged.search == ["top-down", "default", "default"]  # unsearched and tied rows stay
    assert merged.rates.tolist() == pytest.approx([0.6, 0.2, 0.4])
    assert merged.masks[0, 0, 0] == later.masks[0, 0, 0] and merged.masks[2, 0, 0] == 8.0 + 1.0
    assert merged.seconds.tolist() == [3.5, 3.5, 3.5]


def test_best_picks_the_highest_rate_then_the_earlier_search_then_the_better_screened():
    rows = found([0.6, 0.6, 0.3], [True, True, True], [(1 << 30) + 0, 1, 0], "x", 0.0)
    assert rows.best().tolist() == [1, 2]  # a tie goes to the first search's row
    rows.searched[1] = False
    assert rows.best().tolist() == [0, 2]  # a row that was screened out is never kept


def test_topdown_search_is_the_papers_loss_and_steps_from_a_half_mask():
    (_, first), (name, cfg) = make_plan("thorough")
    assert name == "top-down" and cfg == top_down(first)
    assert (cfg.objective, cfg.optimizer, cfg.step_size, cfg.batch_size) == \
        ("paper", "sign", 0.02, 4)
    assert (cfg.init, cfg.init_value, cfg.canvas_candidates, cfg.max_steps) == \
        ("constant", 0.5, 1, 500)
    assert cfg.val_images == first.val_images  # judged on the same images


@pytest.mark.parametrize("override", [{"eval_every": 0}, {"val_images": 0}])
def test_topdown_without_held_out_checks_is_refused(override):
    with pytest.raises(UsageError, match="held-out"):
        make_plan("thorough", **override)
