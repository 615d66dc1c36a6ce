"""The paper preset against METHOD.md: its settings, its loss and one sign step, checked by hand
on a linear model of 2x2 images."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from classwise.search.config import make_config
from classwise.search.engine import MaskSearch, steps_for, total_loss
from classwise.search.objectives import make_objective
from classwise.search.rows import Rows, RowSampler, TensorBank

WEIGHT = np.array([[1.0, -2.0, 0.5, 3.0],
                   [-1.5, 2.5, 4.0, -3.0]])
BIAS = np.array([0.1, -0.2])
CANVAS = np.array([0.9, 0.1, 1.0, 0.0])
SEARCH = np.array([[0.2, 0.8, 0.1, 0.7],
                   [0.5, 0.5, 0.3, 0.9],
                   [0.0, 1.0, 0.6, 0.4],
                   [0.3, 0.2, 0.9, 1.0]])
TARGET = 1


def linear_model() -> nn.Module:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(WEIGHT))
        model[1].bias.copy_(torch.tensor(BIAS))
    return model.eval()


def loss_and_grad_by_hand(mask: np.ndarray, alpha: float = 0.2) -> tuple[float, np.ndarray]:
    """alpha * CE + (1 - alpha) * sum(m) / (H*W/2) and its gradient, in float64 numpy."""
    m = mask.reshape(-1)
    mixed = m * CANVAS + (1 - m) * SEARCH                      # (B, 4)
    logits = mixed @ WEIGHT.T + BIAS                            # (B, 2)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    ce = -np.log(probs[:, TARGET]).mean()
    loss = alpha * ce + (1 - alpha) * m.sum() / (4 / 2)
    onehot = np.eye(2)[TARGET]
    d_mixed = (probs - onehot) @ WEIGHT                         # dCE_n / d mixed_n
    grad = alpha * (d_mixed * (CANVAS - SEARCH)).mean(0) + (1 - alpha) / (4 / 2)
    return float(loss), grad.reshape(2, 2)


def rows_of(n: int = 1) -> Rows:
    canvases = torch.tensor(CANVAS, dtype=torch.float32).view(1, 1, 2, 2).repeat(n, 1, 1, 1)
    samplers = [RowSampler(np.arange(len(SEARCH)), seed=0, target=TARGET, slot=i)
                for i in range(n)]
    return Rows(torch.full((n,), TARGET), canvases, samplers)


def objective(model, masks, rows, x, cfg):
    return total_loss(model, make_objective(cfg), masks, rows, x)


def search_batch(n: int = 1) -> torch.Tensor:
    return torch.tensor(SEARCH, dtype=torch.float32).view(1, 4, 1, 2, 2).repeat(n, 1, 1, 1, 1)


def test_paper_preset_matches_method():
    cfg = make_config("paper")
    assert (cfg.objective, cfg.optimizer, cfg.init) == ("paper", "sign", "constant")
    assert (cfg.alpha, cfg.step_size, cfg.batch_size, cfg.epochs) == (0.2, 0.02, 4, 5)
    assert (cfg.init_value, cfg.search_images, cfg.classes_per_pass) == (0.5, 1800, 1)
    assert (cfg.canvas, cfg.canvas_candidates, cfg.eval_every, cfg.val_images) == \
        ("index:0", 1, 0, 0)


def test_paper_preset_runs_2250_steps_per_class():
    """METHOD.md: 5 epochs x 1,800 images / batch 4 = 2,250 sequential steps per class."""
    cfg = make_config("paper")
    sampler = RowSampler(np.arange(3000), seed=0, target=0, slot=0,
                         search_images=cfg.search_images)
    assert len(sampler.train) == 1800
    assert steps_for(Rows(torch.zeros(1, dtype=torch.long), torch.zeros(1, 1, 2, 2),
                          [sampler]), cfg) == 2250


def test_objective_is_the_papers_loss():
    mask = torch.full((1, 2, 2), 0.5, requires_grad=True)
    value = objective(linear_model(), mask, rows_of(), search_batch(), make_config("paper"))
    (grad,) = torch.autograd.grad(value, mask)
    want_loss, want_grad = loss_and_grad_by_hand(np.full((2, 2), 0.5))
    assert float(value.detach()) == pytest.approx(want_loss, rel=1e-6)
    np.testing.assert_allclose(grad[0].numpy(), want_grad, rtol=1e-5, atol=1e-7)


def test_objective_of_rows_is_their_sum():
    masks = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[0.9, 0.0], [0.3, 1.0]]])
    both = objective(linear_model(), masks, rows_of(2), search_batch(2), make_config("paper"))
    want = sum(loss_and_grad_by_hand(m.numpy().astype(np.float64))[0] for m in masks)
    assert float(both) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("start", [np.full((2, 2), 0.5), np.array([[0.0, 1.0], [0.01, 0.5]])],
                         ids=["half", "edges"])
def test_one_step_moves_each_entry_by_the_sign_step(start):
    """One batch of 4 (the whole search set): m <- clip(m - 0.02 * sign(grad), 0, 1)."""
    cfg = replace(make_config("paper"), epochs=None, max_steps=1)
    bank = TensorBank(torch.tensor(SEARCH, dtype=torch.float32).view(4, 1, 2, 2),
                      torch.device("cpu"))
    mask = torch.tensor(start, dtype=torch.float32)[None]
    moved = MaskSearch(linear_model(), rows_of(), mask, bank, cfg, k=2,
                       order=torch.zeros(1, 2, 2)).run().masks

    _, grad = loss_and_grad_by_hand(start)
    sign = np.sign(grad)
    assert {-1.0, 1.0} <= set(sign.ravel())  # the case moves entries both ways
    want = np.clip(start - 0.02 * sign, 0, 1)
    np.testing.assert_allclose(moved[0].numpy(), want, atol=1e-7)
    if start.min() == 0.0:
        assert not np.allclose(want, start - 0.02 * sign)  # and the clip bites


def test_max_steps_override_shortens_the_paper_preset():
    cfg = make_config("paper", max_steps=3)
    sampler = RowSampler(np.arange(100), seed=0, target=0, slot=0)
    assert steps_for(Rows(torch.zeros(1, dtype=torch.long), torch.zeros(1, 1, 2, 2),
                          [sampler]), cfg) == 3


def test_the_paper_keeps_its_own_k_per_resolution():
    from classwise.search.config import preset_pixels

    assert preset_pixels("paper", 32, 32) == 50  # not round(0.05 * 1024) = 51
    assert preset_pixels("paper", 224, 224) == 2500  # not 2,509
    assert preset_pixels("paper", 28, 28) is None  # elsewhere round(0.05 * H * W)
    assert preset_pixels("default", 32, 32) is None


def test_a_paper_reveal_of_32px_images_keeps_50_pixels_unless_told_otherwise():
    from classwise import reveal
    from classwise.data.base import ArraySplit, Dataset
    from classwise.models import create_model

    gen = np.random.default_rng(0)
    x = gen.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8)
    y = np.arange(40) % 2
    data = Dataset("tiny32", ArraySplit(x[:30], y[:30]), ArraySplit(x[30:], y[30:]))
    net = create_model("small-cnn", (3, 32, 32), 2)
    quick = dict(classes="0", preset="paper", show_progress=False, max_steps=2)
    assert reveal(net, data, **quick).records[0]["pixels"] == 50
    assert reveal(net, data, budget=0.05, **quick).records[0]["pixels"] == 51
    assert reveal(net, data, pixels=7, **quick).records[0]["pixels"] == 7


def test_imagenet_sized_images_get_the_papers_imagenet_schedule():
    from classwise.search.config import make_plan

    (_, cifar), = make_plan("paper", (3, 32, 32))
    (_, imagenet), = make_plan("paper", (3, 224, 224))
    assert (cifar.epochs, cifar.search_images) == (5, 1800)
    assert (imagenet.epochs, imagenet.search_images) == (1, None)  # one epoch over them all
    (_, told), = make_plan("paper", (3, 224, 224), epochs=2, search_images=500)
    assert (told.epochs, told.search_images) == (2, 500)  # the command line wins
    (_, default), = make_plan("default", (3, 224, 224))
    assert default == make_plan("default", (3, 32, 32))[0][1]
