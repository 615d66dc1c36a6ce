"""Optimisers of the mask search, in a registry: a new one is one class and one decorator.

An optimiser holds element-wise state for one tensor of masks (R, H, W), so each row's
trajectory depends on its own gradients only, and turns a gradient into the step to
subtract. It is built from the search's :class:`~classwise.search.config.SearchConfig`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from classwise.registry import Registry

if TYPE_CHECKING:
    from classwise.search.config import SearchConfig

class Optimizer:
    """Turns gradients of the masks into steps; stateless unless a subclass says otherwise."""

    def __init__(self, cfg: SearchConfig, masks: torch.Tensor) -> None:
        self.lr = cfg.step_size

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """The step to subtract from the masks for ``grad``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`."""


OPTIMIZERS: Registry[Optimizer] = Registry("optimizer", fixed=("cfg", "masks"))
register_optimizer = OPTIMIZERS.register
"""Class decorator: register an :class:`Optimizer` subclass under a name."""


def optimizers() -> list[str]:
    """Names of the registered optimisers."""
    return OPTIMIZERS.names()


def make_optimizer(cfg: SearchConfig, masks: torch.Tensor) -> Optimizer:
    """The optimiser ``cfg.optimizer`` for ``masks``."""
    return OPTIMIZERS.get(cfg.optimizer)(cfg, masks)


@register_optimizer("sign")
class Sign(Optimizer):
    """The paper's step: ``step_size * sign(grad)``."""

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        return self.lr * grad.sign()


@register_optimizer("adam")
class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with default betas.

    Written out because ``torch.optim`` imports ``torch._dynamo`` on first use, which costs
    seconds of start-up per process on a small CPU.
    """

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, cfg: SearchConfig, masks: torch.Tensor) -> None:
        super().__init__(cfg, masks)
        self.t = 0
        self.m = torch.zeros_like(masks, memory_format=torch.preserve_format).detach()
        self.v = torch.zeros_like(self.m)

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """Bias-corrected first over second moment, times the learning rate."""
        b1, b2 = self.betas
        self.t += 1
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        return self.lr * m_hat / (v_hat.sqrt() + self.eps)

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, "m": self.m.cpu(), "v": self.v.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = state["t"]
        self.m.copy_(state["m"])
        self.v.copy_(state["v"])
