"""The thorough preset: the default search and the top-down search, per class the pattern
that fools more held-out search images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import digits, tiny_model

from classwise.errors import UsageError
from classwise.search.config import TOPDOWN, make_config, topdown_config
from classwise.search.pools import RowSampler, partition
from classwise.search.reveal import better, reveal

K = 4
CLASSES = "2,5"


def held_out_rate(target: int, canvas: np.ndarray, pattern: np.ndarray, val_images: int) -> int:
    """Held-out search images of ``target``'s rows fooled by the stamped pattern, counted here."""
    data, model = digits(), tiny_model()
    pools = partition(data.train.labels)
    val = RowSampler(pools.search_for(data.train.labels, target), 0, target, 0, val_images).val
    x = data.train.load(val)
    stamped = torch.where(torch.from_numpy(pattern), torch.from_numpy(canvas), x)
    with torch.no_grad():
        return int((model(stamped).argmax(1) == target).sum())


def test_each_class_keeps_the_search_that_fools_more_held_out_images():
    common = dict(classes=CLASSES, pixels=K, show_progress=False)
    model, data = tiny_model(), digits()
    thorough = reveal(model, data, preset="thorough", **common)
    default = reveal(model, data, preset="default", **common)
    topdown = reveal(model, data, preset="default", **TOPDOWN, **common)
    assert thorough.settings["search"]["topdown"] is True
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


def test_better_picks_per_class_and_adds_the_times():
    a = {"masks": np.zeros((3, 2, 2)), "candidates": [{"slot": i} for i in range(3)],
         "rates": [0.5, 0.2, 0.4], "seconds": 1.0}
    b = {"masks": np.ones((3, 2, 2)), "candidates": [{"slot": 10 + i} for i in range(3)],
         "rates": [0.3, 0.6, 0.4], "seconds": 2.5}
    out = better(a, b)
    assert out["candidates"] == [{"slot": 0, "search": "default"},
                                 {"slot": 11, "search": "top-down"},
                                 {"slot": 2, "search": "default"}]  # a tie keeps the default
    assert out["rates"] == [0.5, 0.6, 0.4]
    assert out["masks"][:, 0, 0].tolist() == [0.0, 1.0, 0.0]
    assert out["seconds"] == 3.5


def test_topdown_search_is_the_papers_loss_and_steps_from_a_half_mask():
    cfg = topdown_config(make_config("thorough"))
    assert (cfg.objective, cfg.optimizer, cfg.step_size, cfg.batch_size) == \
        ("paper", "sign", 0.02, 4)
    assert (cfg.init, cfg.init_value, cfg.canvas_candidates, cfg.topdown) == \
        ("constant", 0.5, 1, False)
    assert cfg.val_images == make_config("thorough").val_images  # judged on the same images


@pytest.mark.parametrize("override", [{"eval_every": 0}, {"val_images": 0}])
def test_topdown_without_held_out_checks_is_refused(override):
    with pytest.raises(UsageError, match="held-out"):
        make_config("thorough", **override)
