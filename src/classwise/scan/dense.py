"""The scan's dense families: per class, the smallest additive pattern or warp that makes
most held-out images of the other classes read as it.

A patch trigger shows as a class whose pixel pattern is anomalously small; a trigger spread
over the whole image (Blended, SIG) or made of a warp (WaNet) shows as a class whose dense
pattern is (:mod:`classwise.search.families`). Each family climbs its budgets
(``Family.ladder``) as the pixel ladder does (:mod:`classwise.scan.ladder`): each budget's
search starts from the parameters found at the budget before, a class leaves at the first
budget whose pattern reaches the rate on its held-out search images (and moves on early
from a budget where it fools almost none of them), and its size is the
smallest scale of that pattern that still reaches it (bisection); a class that never
reaches it is extrapolated from its two largest budgets, at most twice the largest. One
row per class, on the same held-out search images as the pixel ladder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from classwise.scan.verdict import size_to_reach
from classwise.search.checkpoint import once
from classwise.search.config import SearchConfig, make_config
from classwise.search.dense import DenseOutcome, dense_rate
from classwise.search.families import GRID, Family
from classwise.search.find import Engine
from classwise.search.rows import Rows

FAMILIES = ("additive", "warp")
"""The dense families a scan searches unless told otherwise."""
SEARCH = {"batch_size": 16, "max_steps": 20, "eval_every": 10, "step_size": 0.1,
          "val_images": 100}
"""Each budget's search: 20 Adam steps of 16 images (in units of the budget), checked at
steps 10 and 20 on 100 held-out images; a class leaves as soon as it reaches the rate."""
FLOOR = 0.1
"""A class whose pattern fools less than this share of its held-out images at a budget's
first check leaves that budget for the next: most classes fool almost nothing at the small
budgets a trigger's target reaches, and their ten more steps there bought nothing. Set on
the development zoo (sig-0, sig-1, wanet-0, wanet-1, blended-0, clean-0, clean-1) with the
checks at 10 steps: the scan took about three quarters of the time, every flagged target
kept an index within 2% of its own or larger; checking at 5 steps instead lowered the SIG
targets' index. Over the whole zoos it cost SIG evidence with the per-pixel additive
family: the SIG target had the smallest additive pattern in 5 of 9 models (8 of 9 with no
floor and checks every 5 steps, which give the first settings back exactly;
docs/benchmarks.md)."""
SCALE_STEPS = 5
"""Bisection steps on the scale of a class's pattern (to 1/32 of its budget)."""
MIN_FACTOR = 1.5
"""A class flagged by a dense family has a pattern at least this many times smaller than the
median class's (the pixel family's is :data:`classwise.scan.verdict.MIN_FACTOR`). Set before
any zoo was scanned with the families: on the first clean development models tried, each
family's smallest class lay within 1.31 times of the median."""


def dense_settings() -> dict[str, float]:
    """The settings of the dense climbs, as a scan records them."""
    return {**SEARCH, "floor": FLOOR, "scale_steps": SCALE_STEPS, "grid": GRID}


def dense_config() -> SearchConfig:
    """The search settings of every dense budget: the default preset's with :data:`SEARCH`."""
    return make_config("default", **SEARCH)


@dataclass
class FamilyFigures:
    """One family's figures per class: the size that reaches the rate (or extrapolated),
    whether it was reached, the rate of the kept pattern, each budget's rate and the kept
    pattern's parameters (at the size found; the last budget's where none reached)."""

    family: str
    unit: str
    sizes: np.ndarray
    reached: np.ndarray
    kept_rates: np.ndarray
    rates: list[dict[str, float]]
    patterns: np.ndarray


def climb_family(engine: Engine, rows: Rows, family: Family, cfg: SearchConfig,
                 rate: float) -> FamilyFigures:
    """Climb ``family``'s budgets for ``rows`` (one per class); see the module."""
    n = len(rows)
    params = family.zeros(n, engine.device)
    reached = np.zeros(n, dtype=bool)
    sizes, kept = np.zeros(n), np.zeros(n)
    history: list[dict[str, float]] = [{} for _ in range(n)]
    rates = torch.zeros(n)  # each row's held-out rate at the budget before
    for b, size in enumerate(family.ladder):
        live = [i for i in range(n) if not reached[i]]
        if not live:
            break
        outcome = _search(engine, rows.take(live), family, params[live], size, cfg, rate,
                          rates[live] if b else None)
        params[live] = outcome.params.to(params.device)
        rates[live] = outcome.rates.float()
        for j, i in enumerate(live):
            history[i][f"{size:g}"] = round(float(outcome.rates[j]), 4)
        now = [i for j, i in enumerate(live) if outcome.rates[j] >= rate]
        if now:
            scale, scale_rate = _smallest_scale(engine, family, rows.take(now), params[now],
                                                rate, outcome.rates[[live.index(i) for i in now]])
            sizes[now], kept[now] = size * scale, scale_rate
            reached[now] = True
            shape = (-1, *[1] * (params.ndim - 1))
            params[now] = params[now] * torch.from_numpy(scale).view(shape).to(params)
    top = 2 * family.ladder[-1]
    for i in np.flatnonzero(~reached):
        budgets = [float(b) for b in history[i]]
        sizes[i] = size_to_reach(budgets, list(history[i].values()), rate, top)
        kept[i] = list(history[i].values())[-1]
    return FamilyFigures(family.name, family.unit, sizes, reached, kept, history,
                         params.cpu().numpy())


def _search(engine: Engine, rows: Rows, family: Family, start: torch.Tensor, size: float,
            cfg: SearchConfig, rate: float, start_rate: torch.Tensor | None) -> DenseOutcome:
    """One budget's search of ``rows`` from ``start`` (whose held-out rates are
    ``start_rate`` when known); a retry after running out of memory starts the rows'
    streams where the first try did."""
    before = rows.state_dict()

    def attempt() -> DenseOutcome:
        rows.load_state_dict(before)
        return engine.dense(rows, family, start, size, cfg, f"{family.name}-{size:g}", rate,
                            start_rate=start_rate, floor=FLOOR)

    return engine.retrying(attempt)


def _smallest_scale(engine: Engine, family: Family, rows: Rows, params: torch.Tensor,
                    rate: float, full: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the smallest share (to 1/2**SCALE_STEPS) of its parameters whose pattern
    still reaches ``rate`` (the whole does, at rate ``full``), and that pattern's rate."""
    lo, hi, hi_rate = torch.zeros(len(rows)), torch.ones(len(rows)), full.clone().float()
    for _ in range(SCALE_STEPS):
        mid = (lo + hi) / 2
        shape = (-1, *[1] * (params.ndim - 1))
        r = dense_rate(engine.model, family, params * mid.view(shape).to(params.device), rows,
                       engine.images)
        ok = r >= rate
        hi, hi_rate = torch.where(ok, mid, hi), torch.where(ok, r, hi_rate)
        lo = torch.where(ok, lo, mid)
    return hi.numpy(), hi_rate.numpy()


def checkpointed_climb(engine: Engine, rows: Rows, family: Family, cfg: SearchConfig,
                       rate: float) -> FamilyFigures:
    """:func:`climb_family`, whose result a resumed scan reads back once it has ended."""
    return once(engine.checkpoint, f"family-{family.name}",
                lambda: climb_family(engine, rows, family, cfg, rate))
