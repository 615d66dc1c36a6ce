"""PGD and adversarial training: the attack works within its bounds, training buys robustness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from classwise.data import load_data
from classwise.data.base import ArraySplit, Dataset
from classwise.errors import UsageError
from classwise.training import train
from classwise.training.adversarial import AdversarialSetting
from classwise.training.pgd import pgd, robust_accuracy
from classwise.training.settings import make_setting


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def batch(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def tiny_data(image_shape: tuple[int, int, int] = (1, 4, 4)) -> Dataset:
    images = np.random.default_rng(0).integers(0, 256, (30, *image_shape), dtype=np.uint8)
    labels = np.arange(30) % 3
    return Dataset("tiny", ArraySplit(images, labels), ArraySplit(images[:9], labels[:9]))


def test_pgd_raises_the_loss_within_the_ball_and_the_pixel_range():
    model = tiny_model().train()
    x, y = batch()
    x_adv = pgd(model, x, y, epsilon=0.1, steps=5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y) + 0.05
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert not x_adv.requires_grad
    assert model.training, "PGD must not change the model's mode"
    assert all(p.grad is None for p in model.parameters()), "PGD must not leave gradients"


def test_pgd_is_reproducible_with_a_generator_and_deterministic_without_random_start():
    model, (x, y) = tiny_model(), batch()
    runs = [pgd(model, x, y, 0.2, 3, generator=torch.Generator().manual_seed(5))
            for _ in range(2)]
    assert torch.equal(*runs)
    assert torch.equal(pgd(model, x, y, 0.2, 3, random_start=False),
                       pgd(model, x, y, 0.2, 3, random_start=False))


@pytest.mark.parametrize("kwargs, message", [
    ({"epsilon": 1.5, "steps": 3}, r"epsilon 1.5 is outside \(0, 1\]"),
    ({"epsilon": 0.0, "steps": 3}, r"epsilon 0.0 is outside \(0, 1\]"),
    ({"epsilon": 0.1, "steps": 0}, "at least 1"),
    ({"epsilon": 0.1, "steps": 3, "step_size": -0.1}, "step size must be positive"),
])
def test_bad_attack_settings_raise_usage_errors(kwargs, message):
    model, (x, y) = tiny_model(), batch(4)
    with pytest.raises(UsageError, match=message):
        pgd(model, x, y, **kwargs)
    with pytest.raises(UsageError, match=message):
        robust_accuracy(model, tiny_data().test, **kwargs)


def test_setting_rejects_bad_options():
    data = tiny_data()
    with pytest.raises(UsageError, match="outside"):
        make_setting("adversarial", data, seed=0, epsilon=1.5)
    with pytest.raises(UsageError, match="at least 1"):
        make_setting("adversarial", data, seed=0, pgd_steps=0)
    with pytest.raises(UsageError, match="^unknown option 'target' for setting adversarial; "
                                         "valid options are epsilon=none, pgd_steps=7, "
                                         "pgd_step_size=none, random_start=true, "
                                         "warmup_epochs=1$"):
        make_setting("adversarial", data, seed=0, target=3)


def test_default_epsilon_follows_the_image_kind():
    assert AdversarialSetting(tiny_data((1, 4, 4))).epsilon == 0.3
    assert AdversarialSetting(tiny_data((3, 4, 4))).epsilon == pytest.approx(8 / 255)


def test_epsilon_ramps_up_over_the_warmup_then_stays():
    setting = AdversarialSetting(tiny_data(), epsilon=0.3, warmup_epochs=1)  # 30 images
    assert [setting.current_epsilon(10) for _ in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.3])
    assert AdversarialSetting(tiny_data(), epsilon=0.3, warmup_epochs=0).current_epsilon(1) == 0.3


def test_perturb_stays_in_the_ball_and_restores_train_mode():
    setting = AdversarialSetting(tiny_data(), epsilon=0.2, pgd_steps=3, warmup_epochs=0)
    model, (x, y) = tiny_model().train(), batch()
    x_adv = setting.perturb(model, x, y)
    assert model.training
    assert 0.1 < (x_adv - x).abs().max() <= 0.2 + 1e-6
    assert setting.options() == {"epsilon": 0.2, "pgd_steps": 3,
                                 "pgd_step_size": pytest.approx(2.5 * 0.2 / 3),
                                 "random_start": True, "warmup_epochs": 0.0}


def test_adversarial_training_buys_robustness_over_natural_training():
    data, eps = load_data("digits"), 0.15
    natural = train(data, arch="small-cnn", epochs=3, seed=0, device="cpu", show_progress=False)
    robust = train(data, arch="small-cnn", setting="adversarial", epochs=3, seed=0,
                   device="cpu", show_progress=False, epsilon=eps, pgd_steps=3)
    natural_robust = robust_accuracy(natural.model, data.test, eps)
    assert robust.meta["robust_eval"] == {"attack": "pgd", "steps": 20, "epsilon": eps,
                                          "step_size": pytest.approx(2.5 * eps / 20),
                                          "random_start": True, "seed": 0}
    assert robust.meta["setting_options"]["epsilon"] == eps
    assert robust.meta["robust_accuracy"] > natural_robust + 0.1
    assert robust.meta["clean_test_accuracy"] > 0.6
