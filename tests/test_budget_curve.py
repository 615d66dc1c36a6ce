"""The predictive-power-by-budget curve: the optimised mask cut at several pixel counts."""

import numpy as np
import torch
from helpers import digits, power_by_hand, revealed, tiny_model
from PIL import Image

from classwise.search.ops import topk_mask


def test_each_class_has_a_curve_through_its_own_budget():
    result = revealed()
    for i, rec in enumerate(result.records):
        pixels = [p for p, _ in rec["budget_curve"]]
        assert pixels == sorted(set(pixels)) and rec["pixels"] in pixels
        at_k = dict(map(tuple, rec["budget_curve"]))[rec["pixels"]]
        assert at_k == round(rec["predictive_power"], 4)
        assert all(0.0 <= v <= 1.0 for _, v in rec["budget_curve"])
        # the curve's largest cut (the head of the ranking), re-stamped by hand, gives the
        # recorded figure: it holds the pattern itself (refined by swaps, so not always the
        # mask's top k) and then the mask's highest values outside it
        n, power = rec["budget_curve"][-1]
        pattern = result.ranks[i] < n
        k = rec["pixels"]
        np.testing.assert_array_equal(result.ranks[i] < k, result.patterns[i])
        rest = torch.from_numpy(np.where(result.patterns[i], -1.0, result.masks[i]))
        top = topk_mask(rest[None], n - k)[0].numpy()
        np.testing.assert_array_equal(np.sort(result.masks[i][pattern & ~result.patterns[i]]),
                                      np.sort(result.masks[i][top]))
        by_hand = power_by_hand(tiny_model(), digits(), rec["class"], result.canvases[i], pattern)
        assert np.isclose(by_hand, power, atol=1e-4)


def test_the_curve_is_drawn_into_the_run_folder(tmp_path):
    revealed().save(tmp_path)
    with Image.open(tmp_path / "budget_curve.png") as img:
        assert img.width > 300 and img.height > 200
    assert "budget_curve.png" in (tmp_path / "report.html").read_text()
