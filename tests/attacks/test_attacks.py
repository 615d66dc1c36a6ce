"""Backdoor attacks: triggers land where specified, poisoning picks the right rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from classwise.attacks import (
    ATTACKS,
    SIG,
    BadNets,
    Blended,
    PoisonedSplit,
    Trojan,
    WaNet,
    attack_success_rate,
    make_attack,
    validate_poison_args,
)
from classwise.data.base import ArraySplit
from classwise.errors import UsageError

SHAPE = (3, 16, 16)


def images(n: int = 4, shape: tuple[int, int, int] = SHAPE, high: float = 0.5) -> torch.Tensor:
    """Random images in [0, high], never white."""
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(0)) * high


def write_png(path, array: np.ndarray) -> str:
    Image.fromarray(array.astype(np.uint8)).save(path)
    return str(path)


def changed(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """``(H, W)`` map of the pixels where any image or channel differs."""
    return (x != y).any(dim=0).any(dim=0).numpy()


# --- BadNets -------------------------------------------------------------------------------

@pytest.mark.parametrize("position, top, left", [
    ("bottom-right", 13, 13), ("top-left", 0, 0), ("top-right", 0, 13),
    ("bottom-left", 13, 0), ("center", 6, 6), ("10,5", 5, 10),
])
def test_badnets_white_patch_exactly_at_position(position, top, left):
    x = images()
    out = BadNets(SHAPE, size=3, position=position).apply(x)
    where = np.zeros((16, 16), dtype=bool)
    where[top:top + 3, left:left + 3] = True
    assert (changed(x, out) == where).all()
    assert (out[:, :, top:top + 3, left:left + 3] == 1).all()


def test_badnets_default_size_follows_image_size():
    assert BadNets((1, 28, 28)).size == 3
    assert BadNets((3, 32, 32)).size == 4
    assert BadNets((3, 64, 64)).size == 8


def test_badnets_checkerboard_starts_white():
    out = BadNets(SHAPE, size=4, position="top-left", content="checkerboard").apply(images())
    expected = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1]] * 2, dtype=torch.float32)
    assert torch.equal(out[:, :, :4, :4], expected.expand(4, 3, 4, 4))


def test_badnets_png_alpha_is_the_mask(tmp_path):
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., :3] = [255, 0, 128]
    rgba[0, :, 3] = 255  # top row opaque, bottom row transparent
    path = write_png(tmp_path / "t.png", rgba)
    x = images()
    attack = BadNets(SHAPE, position="4,7", trigger_file=path)
    out = attack.apply(x)
    where = np.zeros((16, 16), dtype=bool)
    where[7, 4:7] = True
    assert (changed(x, out) == where).all()
    colour = torch.tensor([1.0, 0.0, 128 / 255])
    assert torch.allclose(out[:, :, 7, 4:7], colour[None, :, None].expand(4, 3, 3))
    assert attack.options()["trigger_file"] == path


def test_badnets_png_on_grey_images_uses_luminance(tmp_path):
    rgba = np.full((2, 2, 4), 255, dtype=np.uint8)
    path = write_png(tmp_path / "t.png", rgba)
    pattern, mask = BadNets((1, 8, 8), trigger_file=path).trigger()
    assert pattern.shape == (1, 8, 8) and mask.sum() == 4
    assert (pattern[0, 6:, 6:] == 1).all()


def test_png_without_alpha_is_rejected(tmp_path):
    path = write_png(tmp_path / "rgb.png", np.zeros((3, 3, 3)))
    with pytest.raises(UsageError, match="has no alpha channel; save it with transparency"):
        BadNets(SHAPE, trigger_file=path)


def test_png_larger_than_image_is_rejected(tmp_path):
    path = write_png(tmp_path / "big.png", np.zeros((20, 10, 4)))
    with pytest.raises(UsageError, match="larger than the 16x16 images"):
        Trojan(SHAPE, trigger_file=path)


def test_missing_trigger_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read trigger PNG"):
        BadNets(SHAPE, trigger_file=tmp_path / "nope.png")


@pytest.mark.parametrize("options, message", [
    ({"position": "middle"}, "unknown position 'middle'"),
    ({"position": "15,0"}, "does not fit"),
    ({"size": 17}, "patch size 17 does not fit"),
    ({"content": "red"}, "unknown content 'red'"),
])
def test_badnets_bad_options(options, message):
    with pytest.raises(UsageError, match=message):
        BadNets(SHAPE, size=options.pop("size", 3), **options)


# --- Blended, Trojan -----------------------------------------------------------------------

def test_blended_mixes_pattern_at_alpha():
    x = images()
    attack = Blended(SHAPE, seed=3, alpha=0.3)
    pattern, mask = attack.trigger()
    assert np.allclose(mask, 0.3)
    expected = 0.7 * x + 0.3 * torch.from_numpy(pattern)
    torch.testing.assert_close(attack.apply(x), expected, rtol=0, atol=1e-6)
    assert not np.array_equal(pattern, Blended(SHAPE, seed=4).trigger()[0])
    assert np.array_equal(pattern, Blended(SHAPE, seed=3).trigger()[0])


def test_blended_pattern_file_is_resized(tmp_path):
    path = write_png(tmp_path / "p.png", np.full((5, 7, 3), [255, 0, 0]))
    pattern, _ = Blended(SHAPE, pattern_file=path).trigger()
    assert pattern.shape == SHAPE
    assert np.allclose(pattern[0], 1) and np.allclose(pattern[1:], 0)


def test_trojan_changes_only_pixels_under_its_shaped_mask():
    x = images()
    attack = Trojan(SHAPE, seed=1, position="center")
    pattern, mask = attack.trigger()
    assert 0 < mask.sum() < mask.max() * 25  # a shape, not a full square
    assert len(np.unique(pattern[:, mask > 0])) > 2  # coloured, not binary
    out = attack.apply(x)
    assert (changed(x, out) <= (mask > 0)).all()
    hit = torch.from_numpy(mask > 0)
    assert torch.allclose(out[:, :, hit], torch.from_numpy(pattern)[:, hit].expand(4, -1, -1))


# --- SIG -----------------------------------------------------------------------------------

def test_sig_adds_horizontal_sinusoid_on_grey():
    x = torch.full((2, *SHAPE), 0.5)
    attack = SIG(SHAPE, delta=0.1, frequency=2)
    out = attack.apply(x)
    signal = 0.1 * torch.sin(2 * torch.pi * torch.arange(16) * 2 / 16)
    torch.testing.assert_close(out - 0.5, signal.expand(2, 3, 16, 16), rtol=0, atol=1e-6)
    assert attack.apply(torch.ones(1, *SHAPE)).max() == 1  # clipped


def test_sig_is_clean_label_and_poisons_only_the_target_class():
    labels = np.repeat(np.arange(4), 25)
    picked = SIG(SHAPE).poison_indices(labels, target=2, rate=0.4, seed=0)
    assert SIG.clean_label and len(picked) == 10
    assert (labels[picked] == 2).all()


# --- WaNet ---------------------------------------------------------------------------------

def test_wanet_warps_smoothly_and_stays_in_range():
    shape = (3, 32, 32)
    ramp = torch.linspace(0, 1, 32).expand(1, *shape).contiguous()
    attack = WaNet(shape, seed=0, strength=1.0)
    out = attack.apply(ramp)
    assert 0 <= out.min() and out.max() <= 1
    # bilinear sampling of a horizontal ramp reads back where each pixel samples from
    shift = ((out - ramp) * 31)[0, 0].numpy()
    assert np.allclose(shift, attack.displacement()[..., 0], atol=1e-4)
    assert np.abs(shift).max() > 0.5
    inner = shift[1:-1, 1:-1]  # the border is pinned by clamping the grid to the image
    assert np.abs(np.diff(inner, axis=0)).max() < 0.3
    assert np.abs(np.diff(inner, axis=1)).max() < 0.3
    pattern, mask = attack.trigger()
    assert pattern.max() == 1 and 0 < mask.sum() < mask.size


def test_wanet_strength_zero_is_identity():
    x = images(high=1.0)
    torch.testing.assert_close(WaNet(SHAPE, strength=0).apply(x), x, rtol=0, atol=1e-5)


# --- poisoning -----------------------------------------------------------------------------

def test_poison_indices_counts_classes_and_seed():
    labels = np.repeat(np.arange(5), 20)
    attack = BadNets(SHAPE)
    picked = attack.poison_indices(labels, target=1, rate=0.25, seed=7)
    assert len(picked) == 20 and len(np.unique(picked)) == 20
    assert (labels[picked] != 1).all()
    assert np.array_equal(picked, attack.poison_indices(labels, 1, 0.25, seed=7))
    assert not np.array_equal(picked, attack.poison_indices(labels, 1, 0.25, seed=8))


def test_poison_rate_that_poisons_nothing_is_rejected():
    with pytest.raises(UsageError, match="poisons none"):
        BadNets(SHAPE).poison_indices(np.arange(10) % 2, target=0, rate=0.01, seed=0)


def test_poisoned_split_relabels_and_triggers_only_poisoned_rows():
    raw = (images(6).numpy() * 255).astype(np.uint8)
    masks = np.ones((6, 16, 16), dtype=bool)
    base = ArraySplit(raw, np.array([0, 1, 2, 0, 1, 2]), object_masks=masks)
    attack = BadNets(SHAPE, size=2)
    split = PoisonedSplit(base, attack, np.array([4, 1]), target=0)
    assert split.labels.tolist() == [0, 0, 2, 0, 0, 2]
    assert split.image_shape == SHAPE and split.object_masks is masks
    clean, poisoned = base.load(), split.load()
    assert torch.equal(poisoned[[0, 2, 3, 5]], clean[[0, 2, 3, 5]])
    assert torch.equal(poisoned[[1, 4]], attack.apply(clean[[1, 4]]))
    assert torch.equal(split.load([4]), poisoned[[4]])


def test_poisoned_split_keeps_labels_for_clean_label_attacks():
    base = ArraySplit(np.zeros((3, *SHAPE), dtype=np.uint8), np.array([0, 1, 1]))
    split = PoisonedSplit(base, SIG(SHAPE), np.array([1]), target=1)
    assert split.labels.tolist() == [0, 1, 1]
    assert split.load([1]).max() > 0


def test_validate_poison_args():
    validate_poison_args(9, 10, 0.1)
    with pytest.raises(UsageError, match=r"^target 12 is out of range; use a class in 0\.\.9$"):
        validate_poison_args(12, 10, 0.1)
    with pytest.raises(UsageError, match="target -1"):
        validate_poison_args(-1, 10, 0.1)
    for rate in (0, 1, 1.5):
        with pytest.raises(UsageError, match=f"poison rate {rate} is outside"):
            validate_poison_args(0, 10, rate)


# --- registry ------------------------------------------------------------------------------

def test_make_attack_unknown_name_lists_valid_ones():
    with pytest.raises(UsageError, match="^unknown attack 'foo'; choose one of "
                                         "badnets, blended, sig, trojan, wanet$"):
        make_attack("foo", SHAPE)


def test_make_attack_unknown_option():
    with pytest.raises(UsageError, match="^unknown option 'alpha' for attack badnets; valid "
                                         "options are size=none, position=bottom-right, "
                                         "content=white, trigger_file=none$"):
        make_attack("badnets", SHAPE, alpha=0.1)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_options_are_json_and_rebuild_the_attack(name):
    attack = make_attack(name, SHAPE, seed=5)
    options = json.loads(json.dumps(attack.options()))
    assert options["name"] == name and options["seed"] == 5
    rebuilt = make_attack(image_shape=SHAPE, **options)
    for a, b in zip(attack.trigger(), rebuilt.trigger(), strict=True):
        assert a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
        assert np.array_equal(a, b)
    x = images()
    out = attack.apply(x.double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), attack.apply(x), rtol=0, atol=1e-5)


def test_apply_rejects_images_of_another_shape():
    with pytest.raises(UsageError, match="build the attack with the data's image_shape"):
        BadNets((1, 28, 28)).apply(images())


# --- attack success rate -------------------------------------------------------------------

class WhiteCornerModel(nn.Module):
    """Predicts ``target`` when the bottom-right pixel is white, else class 0."""

    def __init__(self, target: int, num_classes: int = 4) -> None:
        super().__init__()
        self.target, self.num_classes = target, num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        white = (x[:, :, -1, -1] > 0.99).all(dim=1)
        logits = torch.zeros(len(x), self.num_classes)
        logits[:, self.target] = white.float() * 2 - 1
        return logits


def test_attack_success_rate_on_hand_made_model():
    raw = (images(12).numpy() * 255).astype(np.uint8)
    split = ArraySplit(raw, np.arange(12) % 4)
    model = WhiteCornerModel(target=3).train()
    assert attack_success_rate(model, split, BadNets(SHAPE), 3, batch_size=5) == 1.0
    assert attack_success_rate(model, split, BadNets(SHAPE, position="top-left"), 3) == 0.0
    assert attack_success_rate(model, split, Blended(SHAPE), 3) == 0.0
    assert model.training
