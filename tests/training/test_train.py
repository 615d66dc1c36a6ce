"""train(): the caller's random state is left alone, augmentation, and the one cache rule."""

from __future__ import annotations

import importlib
import json
import random

import numpy as np
import pytest
import torch
from helpers import SMALL, digits

from classwise.errors import UsageError
from classwise.reveal import reveal
from classwise.training import train
from classwise.training.train import translate

DEMO = importlib.import_module("classwise.demo")  # the package's `demo` is the function
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


def stamp(out) -> int:
    return (out / "model.pt").stat().st_mtime_ns


def test_reuse_keeps_a_model_of_the_same_request_and_retrains_anything_else(tmp_path):
    out = tmp_path / "model"
    first = train(digits(), seed=0, out=out, reuse=True, **QUICK)
    written = stamp(out)
    again = train(digits(), seed=0, out=out, reuse=True, **QUICK)
    assert stamp(out) == written and again.meta == first.meta
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], tensor)
    assert not again.model.training
    for change in ({"seed": 1}, {"seed": 0, "augment": True}, {"seed": 0, "lr": 1e-3}):
        other = train(digits(), out=out, reuse=True, **{**QUICK, **change})
        assert stamp(out) != written, f"{change} must retrain"
        written = stamp(out)
        assert {k: other.meta[k] for k in change} == change


def test_reuse_accepts_a_model_recorded_before_augment_existed(tmp_path):
    out = tmp_path / "model"
    train(digits(), out=out, **QUICK)
    meta = json.loads((out / "meta.json").read_text())
    del meta["augment"]
    (out / "meta.json").write_text(json.dumps(meta))
    written = stamp(out)
    train(digits(), out=out, reuse=True, **QUICK)
    assert stamp(out) == written
    train(digits(), out=out, reuse=True, augment=True, **QUICK)
    assert stamp(out) != written


def test_reuse_replaces_the_files_of_another_setting(tmp_path):
    out = tmp_path / "model"
    train(digits(), setting="backdoor", attack="badnets", target=3, out=out, **QUICK)
    assert (out / "trigger.png").is_file()
    train(digits(), out=out, reuse=True, **QUICK)
    assert not (out / "trigger.png").exists() and not (out / "trigger.npz").exists()


def test_demo_reuses_its_model_for_the_same_seed_and_retrains_for_another(tmp_path,
                                                                          monkeypatch):
    """The demo's own calls, on digits with one epoch and a small search instead of mnist5k."""
    asked_seeds = []

    def small_train(data, **kwargs):
        result = train(digits(), **{**kwargs, "epochs": 1, "device": "cpu"})
        asked_seeds.append(result.meta["seed"])
        return result

    def small_reveal(model, data, **kwargs):
        return reveal(model, digits(), **{**kwargs, "budget": None, "pixels": 2,
                                          "classes": [0], **SMALL})

    monkeypatch.setattr(DEMO, "train", small_train)
    monkeypatch.setattr(DEMO, "reveal", small_reveal)
    model = tmp_path / "demo" / "model"
    DEMO.demo(tmp_path / "demo", seed=0, show_progress=False)
    written = stamp(model)
    DEMO.demo(tmp_path / "demo", seed=0, show_progress=False)
    assert stamp(model) == written, "the seed-0 model is reused"
    result = DEMO.demo(tmp_path / "demo", seed=1, show_progress=False)
    assert stamp(model) != written, "--seed 1 retrains"
    assert json.loads((model / "meta.json").read_text())["seed"] == 1
    assert result.settings["seed"] == 1 and asked_seeds == [0, 0, 1]


@pytest.mark.parametrize("kwargs, message", [
    ({"reuse": True}, "reuse needs the folder 'out' to look in"),
    ({"resume": True}, "resume needs the folder 'out' to look in"),
])
def test_reuse_and_resume_need_a_folder(kwargs, message):
    with pytest.raises(UsageError, match=message):
        train(digits(), **QUICK, **kwargs)
