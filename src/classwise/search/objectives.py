"""Objectives of the mask search, in a registry: a new one is one class and one decorator.

An objective turns the logits of the blended images into one loss per row and says which
masks are feasible after an update (:meth:`Objective.constrain`). It is built from the
search's :class:`~classwise.search.config.SearchConfig`, so its own settings live there.

>>> @register_objective("target-logit")
... class TargetLogit(Objective):
...     def row_losses(self, logits, targets, masks):
...         t = targets[:, None, None].expand(*logits.shape[:2], 1)
...         return -logits.gather(2, t).mean((1, 2))
>>> "target-logit" in objectives()
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from classwise.registry import Registry
from classwise.search.ops import project_budget

if TYPE_CHECKING:
    from classwise.search.config import SearchConfig

class Objective:
    """Per-row loss of blended images; masks clipped to [0, 1] after each update."""

    def __init__(self, cfg: SearchConfig) -> None:
        self.cfg = cfg

    def row_losses(self, logits: torch.Tensor, targets: torch.Tensor,
                   masks: torch.Tensor) -> torch.Tensor:
        """Losses (R,) of logits (R, B, classes) toward ``targets`` (R,) with masks (R, H, W)."""
        raise NotImplementedError

    def constrain(self, masks: torch.Tensor, k: int) -> torch.Tensor:
        """The feasible masks nearest to ``masks`` (R, H, W) for a budget of ``k`` pixels."""
        return masks.clamp(0, 1)


OBJECTIVES: Registry[Objective] = Registry("objective", fixed=("cfg",))
register_objective = OBJECTIVES.register
"""Class decorator: register an :class:`Objective` subclass under a name."""


def objectives() -> list[str]:
    """Names of the registered objectives."""
    return OBJECTIVES.names()


def make_objective(cfg: SearchConfig) -> Objective:
    """The objective ``cfg.objective`` with the settings of ``cfg``."""
    return OBJECTIVES.get(cfg.objective)(cfg)


def _target_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r, b, n = logits.shape
    t = targets[:, None].expand(r, b)
    return F.cross_entropy(logits.reshape(r * b, n), t.reshape(-1),
                           reduction="none").view(r, b).mean(1)


@register_objective("paper")
class PaperObjective(Objective):
    """Zhao et al.: ``alpha * CE(f(x'), t) + (1 - alpha) * sum(m) / (H * W / 2)``."""

    def row_losses(self, logits: torch.Tensor, targets: torch.Tensor,
                   masks: torch.Tensor) -> torch.Tensor:
        h, w = masks.shape[1:]
        alpha = self.cfg.alpha
        return alpha * _target_ce(logits, targets) \
            + (1 - alpha) * masks.flatten(1).sum(1) / (h * w / 2)


@register_objective("margin")
class MarginObjective(Objective):
    """The best other logit minus the target's, clamped to ``[-margin, cap]`` per image:
    images already fooled by ``margin``, and images out of reach, stop pulling. The mask is
    held inside the pixel budget by projection instead of a size term."""

    def row_losses(self, logits: torch.Tensor, targets: torch.Tensor,
                   masks: torch.Tensor) -> torch.Tensor:
        r, b, _ = logits.shape
        t = targets[:, None].expand(r, b)[..., None]
        target_logit = logits.gather(2, t).squeeze(2)
        others = logits.scatter(2, t, float("-inf")).amax(2)
        return (others - target_logit).clamp(min=-self.cfg.margin, max=self.cfg.cap).mean(1)

    def constrain(self, masks: torch.Tensor, k: int) -> torch.Tensor:
        return project_budget(masks, k)
