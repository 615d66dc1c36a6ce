"""train(): the caller's random state is left alone, and augmentation."""

from __future__ import annotations

import random

import numpy as np
import torch
from helpers import digits

from classwise.training import train
from classwise.training.train import translate

QUICK = {"arch": "small-cnn", "epochs": 1, "batch_size": 128, "device": "cpu",
         "show_progress": False}


def draws() -> tuple[torch.Tensor, np.ndarray, float]:
    """One draw from each global generator: torch's, numpy's and Python's."""
    return torch.rand(3), np.random.rand(3), random.random()


def seed_globals(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def test_train_leaves_the_callers_global_random_state_alone():
    seed_globals(123)
    expected = draws()
    seed_globals(123)
    train(digits(), setting="adversarial", epsilon=0.2, pgd_steps=1, augment=True, seed=5,
          **QUICK)
    torch_draw, numpy_draw, python_draw = draws()
    assert torch.equal(torch_draw, expected[0])
    assert np.array_equal(numpy_draw, expected[1])
    assert python_draw == expected[2]


def test_translate_moves_whole_images_by_up_to_two_pixels_without_flipping():
    x = torch.rand(400, 3, 8, 8) + 0.1  # nothing zero, so the padding shows
    torch.manual_seed(0)
    moved = translate(x)
    torch.manual_seed(0)
    assert torch.equal(translate(x), moved), "the same generator state moves the same way"
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    seen = set()
    for i in range(len(x)):
        shifts = [(dy, dx) for dy in range(5) for dx in range(5)
                  if torch.equal(moved[i], padded[i, :, dy:dy + 8, dx:dx + 8])]
        assert len(shifts) == 1, f"image {i} is not a translate of the original"
        seen.add(shifts[0])
    assert len(seen) == 25, "every shift in -2..2 x -2..2 occurs"


def test_augment_is_recorded_and_trains_on_moved_images():
    plain = train(digits(), **QUICK)
    augmented = train(digits(), augment=True, **QUICK)
    assert plain.meta["augment"] is False and augmented.meta["augment"] is True
    assert not torch.equal(plain.model.classifier[3].weight,
                           augmented.model.classifier[3].weight)
    again = train(digits(), augment=True, **QUICK)
    assert torch.equal(again.model.classifier[3].weight, augmented.model.classifier[3].weight)
