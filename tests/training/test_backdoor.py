"""Backdoor training: a poisoned model learns the trigger, and its files describe it."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from classwise.attacks import BadNets
from classwise.data import load_data
from classwise.errors import UsageError
from classwise.training import train
from classwise.training.backdoor import BackdoorSetting, trigger_png


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


@pytest.fixture(scope="module")
def run(digits, tmp_path_factory):
    """A small CNN trained on digits with a 3x3 white BadNets patch towards class 3."""
    out = tmp_path_factory.mktemp("backdoor")
    result = train(digits, arch="small-cnn", setting="backdoor", attack="badnets", target=3,
                   epochs=8, out=out, show_progress=False)
    return result, out


def test_poisoned_model_learns_trigger_and_stays_accurate(run, digits):
    result, _ = run
    assert result.meta["attack_success_rate"] >= 0.8
    assert result.meta["clean_test_accuracy"] >= 0.85
    non_target = int((digits.train.labels != 3).sum())
    assert result.meta["poisoned_images"] == round(0.1 * non_target)


def test_meta_records_setting_and_attack_options(run):
    _, out = run
    meta = json.loads((out / "meta.json").read_text())
    assert meta["setting"] == "backdoor"
    assert meta["setting_options"] == {"attack": "badnets", "target": 3, "poison_rate": 0.1,
                                       "size": 3, "position": "bottom-right",
                                       "content": "white", "trigger_file": None}
    assert meta["attack_success_rate"] == run[0].meta["attack_success_rate"]


def test_trigger_files_hold_pattern_mask_and_target(run):
    _, out = run
    npz = np.load(out / "trigger.npz")
    where = np.zeros((8, 8), dtype=np.float32)
    where[5:, 5:] = 1
    assert npz["pattern"].dtype == npz["mask"].dtype == np.float32
    assert (npz["mask"] == where).all()
    assert (npz["pattern"] == where[None]).all()
    assert int(npz["target"]) == 3
    png = Image.open(out / "trigger.png")
    assert png.mode == "LA" and png.size == (8, 8)
    assert (np.asarray(png)[..., 1] == where * 255).all()


def test_trigger_png_rebuilds_the_attack(run):
    _, out = run
    rebuilt = BadNets((1, 8, 8), trigger_file=out / "trigger.png", position="top-left")
    pattern, mask = rebuilt.trigger()
    npz = np.load(out / "trigger.npz")
    assert (pattern == npz["pattern"]).all() and (mask == npz["mask"]).all()


def test_trigger_png_of_colour_pattern_is_rgba():
    pattern = np.zeros((3, 2, 2), dtype=np.float32)
    pattern[0, 0, 0] = 1.0
    mask = np.array([[1.0, 0.5], [0.0, 0.0]], dtype=np.float32)
    png = Image.open(io.BytesIO(trigger_png(pattern, mask)))
    assert png.mode == "RGBA"
    assert np.asarray(png)[0].tolist() == [[255, 0, 0, 255], [0, 0, 0, 128]]


def test_options_rebuild_the_same_poisoning(digits):
    setting = BackdoorSetting(digits, seed=5, attack="trojan", target=1, poison_rate=0.05)
    again = BackdoorSetting(digits, seed=5, **setting.options())
    assert (again.poisoned == setting.poisoned).all()
    assert all((a == b).all() for a, b in zip(again.attack.trigger(), setting.attack.trigger(),
                                          strict=True))
    other_seed = BackdoorSetting(digits, seed=6, **setting.options())
    assert not np.array_equal(other_seed.poisoned, setting.poisoned)


def test_defaults_come_from_the_attack(digits):
    sig = BackdoorSetting(digits, attack="sig", target="2")
    assert (sig.target, sig.poison_rate) == (2, 0.3)
    assert (digits.train.labels[sig.poisoned] == 2).all()
    split = sig.train_split(digits)
    assert (split.labels == digits.train.labels).all()  # clean-label: labels kept


@pytest.mark.parametrize("options, message", [
    ({}, r"^the backdoor setting needs an attack; choose one of badnets, blended, sig, "
         r"trojan, wanet$"),
    ({"attack": "patch"}, "has no attack 'patch'; choose one of badnets"),
    ({"attack": "badnets", "target": 10}, "target 10 is out of range; use a class in 0..9"),
    ({"attack": "badnets", "target": -1}, "target -1 is out of range"),
    ({"attack": "badnets", "poison_rate": 0.0}, r"poison rate 0.0 is outside \(0, 1\)"),
    ({"attack": "badnets", "poison_rate": 1.5}, r"poison rate 1.5 is outside \(0, 1\)"),
    ({"attack": "badnets", "alpha": 0.2}, "unknown option 'alpha' for attack badnets"),
])
def test_bad_options_fail_before_anything_is_written(digits, tmp_path, options, message):
    out = tmp_path / "run"
    with pytest.raises(UsageError, match=message):
        train(digits, setting="backdoor", epochs=1, out=out, show_progress=False, **options)
    assert not out.exists()
