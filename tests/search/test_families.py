"""Dense pattern families: what their parameters do to images, their budgets, and the dense
search's rows staying independent of how they are chunked."""

from __future__ import annotations

import helpers
import numpy as np
import pytest
import torch

from classwise.errors import UsageError
from classwise.reveal.pools import SplitBank, partition
from classwise.search.config import make_config
from classwise.search.families import Additive, Warp, families, make_family
from classwise.search.find import Engine
from classwise.search.rows import TensorBank


def images(n: int = 3, b: int = 2, h: int = 8, w: int = 8) -> torch.Tensor:
    return torch.rand(n, b, 1, h, w, generator=torch.Generator().manual_seed(0))


def test_the_registry_names_both_families_and_refuses_others():
    assert families() == ["additive", "warp"]
    with pytest.raises(UsageError, match="unknown pattern family 'blur'.*additive, warp"):
        make_family("blur", (1, 8, 8))


def test_an_additive_pattern_adds_within_its_budget_and_keeps_pixels_in_range():
    fam = make_family("additive", (1, 8, 8))
    x = images()
    assert torch.equal(fam.apply(fam.zeros(3, torch.device("cpu")), x), x)
    params = fam.project(torch.full((3, 1, 8, 8), 0.7), 0.25)
    assert params.abs().max() == 0.25
    out = fam.apply(params, x)
    assert torch.allclose(out, (x + 0.25).clamp(0, 1)) and out.max() <= 1


def test_on_a_larger_image_an_additive_pattern_is_a_smooth_lattice():
    fam = make_family("additive", (1, 28, 28))
    cpu = torch.device("cpu")
    assert fam.zeros(3, cpu).shape == (3, 1, 8, 8)
    x = images(b=2, h=28, w=28) * 0.5
    torch.testing.assert_close(fam.apply(torch.full((3, 1, 8, 8), 0.25), x), x + 0.25)
    bump = fam.zeros(1, cpu)
    bump[0, 0, 3, 4] = 0.25  # one lattice point, at pixel (3 * 27 / 7, 4 * 27 / 7)
    change = fam.field(bump)[0, 0]
    assert change.shape == (28, 28) and change.max() <= 0.25 + 1e-6
    assert change.argmax() == 12 * 28 + 15  # the nearest pixel, (11.6, 15.4) rounded
    assert 20 < int((change.abs() > 1e-3).sum()) < 28 * 28  # smooth, and local


def test_a_warp_of_nothing_is_the_identity_and_one_pixel_shifts_the_image_by_one():
    fam = make_family("warp", (1, 8, 8))
    x = images()
    assert fam.zeros(3, torch.device("cpu")).shape == (3, 2, 8, 8)
    torch.testing.assert_close(fam.apply(fam.zeros(3, torch.device("cpu")), x), x)
    right = torch.zeros(3, 2, 8, 8)
    right[:, 0] = 1.0  # every output pixel samples the input one pixel to its right
    out = fam.apply(right, x)
    torch.testing.assert_close(out[..., :-1], x[..., 1:])
    torch.testing.assert_close(out[..., -1], x[..., -1])  # the border repeats
    assert fam.project(right * 3, 0.5).abs().max() == 0.5


def test_the_warp_lattice_is_never_finer_than_the_image():
    assert make_family("warp", (1, 4, 6)).zeros(1, torch.device("cpu")).shape == (1, 2, 4, 4)
    with pytest.raises(UsageError, match="warp grid 1 is too coarse"):
        Warp((1, 8, 8), grid=1)
    with pytest.raises(UsageError, match="additive grid 1 is too coarse"):
        Additive((1, 8, 8), grid=1)


@pytest.mark.parametrize("name", ["additive", "warp"])
def test_dense_rows_are_the_same_however_they_are_chunked(name):
    ds = helpers.digits()
    net = helpers.tiny_model()
    pools = partition(ds.train.labels)
    fam = make_family(name, ds.image_shape)
    cfg = make_config("default", batch_size=8, max_steps=6, eval_every=3, val_images=30)

    def run(max_batch: int):
        engine = Engine(net, TensorBank(torch.zeros(10, *ds.image_shape), torch.device("cpu")),
                        torch.arange(10), SplitBank(ds.train, pools.search, torch.device("cpu")),
                        ds.train.labels[pools.search], 3, torch.device("cpu"), max_batch)
        rows = engine.rows(list(range(10)), cfg)
        return engine.dense(rows, fam, fam.zeros(10, torch.device("cpu")), 0.25, cfg, "t", 0.9)

    together, apart = run(80), run(8)  # ten rows in one pass, one row a pass
    torch.testing.assert_close(together.params, apart.params, rtol=0, atol=0)
    torch.testing.assert_close(together.rates, apart.rates, rtol=0, atol=0)
    assert together.params.abs().max() <= 0.25 and together.rates.max() > 0
    assert np.all((together.rates.numpy() * 30) % 1 == 0)  # shares of 30 held-out images


def test_a_row_below_the_floor_at_the_first_check_leaves_the_pass():
    ds = helpers.digits()
    net = helpers.tiny_model()
    pools = partition(ds.train.labels)
    fam = make_family("additive", ds.image_shape)

    def run(steps: int, floor: float, start_rate: torch.Tensor | None = None):
        cfg = make_config("default", batch_size=8, max_steps=steps, eval_every=3, val_images=30)
        engine = Engine(net, TensorBank(torch.zeros(10, *ds.image_shape), torch.device("cpu")),
                        torch.arange(10), SplitBank(ds.train, pools.search, torch.device("cpu")),
                        ds.train.labels[pools.search], 3, torch.device("cpu"), 80)
        rows = engine.rows(list(range(10)), cfg)
        return engine.dense(rows, fam, fam.zeros(10, torch.device("cpu")), 0.25, cfg, "t",
                            0.9, start_rate, floor)

    short, left, kept = run(3, 0.0), run(9, 1.1), run(9, 0.0)
    torch.testing.assert_close(left.params, short.params, rtol=0, atol=0)
    torch.testing.assert_close(left.rates, short.rates, rtol=0, atol=0)
    assert not torch.equal(kept.params, short.params)  # without the floor the rows go on
    done = run(9, 0.0, torch.ones(10))  # a start known to reach the rate is not searched on
    assert torch.equal(done.params, torch.zeros_like(done.params))
    assert torch.equal(done.rates, torch.ones(10))
