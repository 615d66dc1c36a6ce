"""The search of dense patterns: each row's parameters of a family, within a size budget.

Rows are independent, as in the mask search: each draws its own batches, its loss is its
own and the optimiser's state is element-wise, so rows searched together in one forward
pass give what each would give alone. The objective and the optimiser come from their
registries; an optimiser's step is taken in units of the budget, so one learning rate
serves every size of every family.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import torch
from torch import nn

from classwise.search.config import SearchConfig
from classwise.search.engine import held_out_rate
from classwise.search.families import Family
from classwise.search.objectives import make_objective
from classwise.search.optimizers import make_optimizer
from classwise.search.rows import Bank, Rows


class DenseOutcome(NamedTuple):
    """The parameters kept per row (the best on its held-out search images) and their
    held-out rates."""

    params: torch.Tensor
    rates: torch.Tensor


def dense_rate(model: nn.Module, family: Family, params: torch.Tensor, rows: Rows,
               images: Bank) -> torch.Tensor:
    """Per row, the share of its held-out search images read as its target once changed by
    its parameters."""
    params = params.to(rows.canvases.device)
    return held_out_rate(model, rows, images,
                         lambda x, row: family.apply(params[row], x[:, None])[:, 0])


def optimise_dense(model: nn.Module, family: Family, rows: Rows, images: Bank,
                   start: torch.Tensor, size: float, cfg: SearchConfig,
                   stop_at: float = 1.0, start_rate: torch.Tensor | None = None,
                   floor: float = 0.0) -> DenseOutcome:
    """Optimise each row's ``family`` parameters from ``start`` within ``size``.

    ``cfg.max_steps`` steps of ``cfg.batch_size`` images per row; every ``cfg.eval_every``
    steps (and at the end) each row's parameters are judged on its held-out search images
    and the best kept, and a row whose best reaches ``stop_at`` leaves the pass, as does a
    row whose best is still below ``floor`` at the first check. ``start_rate``: the
    held-out rates of ``start`` when known (they are measured otherwise). The loss
    is the margin objective's whatever ``cfg.objective`` says: a dense pattern is held to
    its budget by projection, so a size term would have nothing to do.
    """
    objective = make_objective(replace(cfg, objective="margin"))
    params = family.project(start.detach().clone(), size).requires_grad_(True)
    optimizer = make_optimizer(cfg, params)
    best = params.detach().clone()
    best_rate = (dense_rate(model, family, best, rows, images) if start_rate is None
                 else start_rate.clone().float())
    active = torch.nonzero(best_rate < stop_at).flatten()
    for step in range(1, cfg.max_steps + 1):
        if len(active) == 0:
            break
        sub = rows.take(active)
        on = active.to(params.device)
        x = sub.draw(images, cfg.batch_size)
        logits = model(family.apply(params[on], x).flatten(0, 1)).view(*x.shape[:2], -1)
        loss = objective.row_losses(logits, sub.targets, params[on]).sum()
        (grad,) = torch.autograd.grad(loss, params)
        with torch.no_grad():  # rows that left get zero gradients and are not read again
            params.sub_(size * optimizer.direction(grad))
            params.copy_(family.project(params, size))
        if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.max_steps:
            rates = dense_rate(model, family, params.detach()[on], sub, images)
            better = rates > best_rate[active]
            best[on[better.to(on.device)]] = params.detach()[on][better.to(on.device)]
            best_rate[active[better]] = rates[better]
            live = best_rate[active] < stop_at
            if step == cfg.eval_every:
                live &= best_rate[active] >= floor
            active = active[live]
    return DenseOutcome(best, best_rate)
