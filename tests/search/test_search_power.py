"""A trained model is fooled by its own class-wise patterns far more than by random pixels."""

from __future__ import annotations

import numpy as np
from helpers import digits, power_by_hand, revealed, tiny_model

K = 6  # 10% of 8x8 = 6.4 -> 6 pixels


def test_patterns_beat_random_pixels_by_a_wide_margin():
    # Measured: mean predictive power 0.30 against 0.01 for random pixels (seed 0); the
    # weakest class reaches 0.21 where its random pixels reach at most 0.06.
    records = revealed().records
    assert [r["class"] for r in records] == list(range(10))
    power = np.array([r["predictive_power"] for r in records])
    rand = np.array([r["random_pixels"] for r in records])
    clean = np.array([r["no_pattern"] for r in records])
    assert power.mean() > rand.mean() + 0.15
    assert (power > rand + 0.05).all()
    assert (power > clean + 0.05).all()
    assert revealed().mean_predictive_power == power.mean()


def test_every_pattern_keeps_exactly_k_canvas_pixels():
    result = revealed()
    assert all(r["pixels"] == K for r in result.records)
    assert (result.patterns.reshape(10, -1).sum(1) == K).all()
    assert result.settings["budget_pixels"] == K


def test_predictive_power_matches_stamping_by_hand():
    result, model, data = revealed(), tiny_model(), digits()
    for i, rec in enumerate(result.records):
        t = rec["class"]
        assert power_by_hand(model, data, t, result.canvases[i], result.patterns[i]) == \
            rec["predictive_power"]
        assert power_by_hand(model, data, t, result.canvases[i], None) == rec["no_pattern"]
