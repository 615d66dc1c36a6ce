"""Adversarial training (Madry et al. 2018): train on PGD examples of each batch.

The examples are crafted with the model in eval mode (batch-norm statistics are read,
not updated, by the attack's extra passes; train mode is restored before the update
step). Epsilon ramps up linearly over the first ``warmup_epochs`` epochs of training
images seen, which lets a small CNN learn the clean task before the full radius.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from classwise.data.base import Dataset
from classwise.errors import UsageError
from classwise.training.pgd import check_pgd_args, pgd, robust_accuracy
from classwise.training.settings import Setting, register_setting

EVAL_STEPS = 20


def default_epsilon(image_shape: tuple[int, int, int]) -> float:
    """0.3 for grey images up to 28x28 (MNIST-like), 8/255 otherwise (CIFAR-like)."""
    c, h, w = image_shape
    return 0.3 if c == 1 and max(h, w) <= 28 else 8 / 255


@register_setting("adversarial")
class AdversarialSetting(Setting):
    """PGD adversarial training at radius ``epsilon`` (L-infinity, [0, 1] pixels).

    ``pgd_step_size`` defaults to ``2.5 * epsilon / pgd_steps`` and shrinks with epsilon
    during the warm-up.
    """

    def __init__(self, data: Dataset, seed: int = 0, epsilon: float | None = None,
                 pgd_steps: int = 7, pgd_step_size: float | None = None,
                 random_start: bool = True, warmup_epochs: float = 1.0) -> None:
        if warmup_epochs < 0:
            raise UsageError(f"warmup_epochs must be 0 or more, got {warmup_epochs}; "
                             "use 0 to train at the full epsilon from the start")
        self.epsilon = float(default_epsilon(data.image_shape) if epsilon is None else epsilon)
        self.pgd_step_size = check_pgd_args(self.epsilon, pgd_steps, pgd_step_size)
        self.pgd_steps = int(pgd_steps)
        self.random_start = bool(random_start)
        self.warmup_epochs = float(warmup_epochs)
        self._warmup_images = self.warmup_epochs * len(data.train)
        self._seen = 0

    def current_epsilon(self, batch: int) -> float:
        """The radius for the next ``batch`` images: a linear ramp, then ``epsilon``."""
        self._seen += batch
        if self._seen >= self._warmup_images:
            return self.epsilon
        return self.epsilon * self._seen / self._warmup_images

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """PGD examples of the batch, crafted in eval mode; the model's mode is restored."""
        eps = self.current_epsilon(len(x))
        was_training = model.training
        model.eval()
        try:
            return pgd(model, x, y, eps, self.pgd_steps,
                       self.pgd_step_size * eps / self.epsilon, self.random_start)
        finally:
            model.train(was_training)

    def evaluate(self, model: nn.Module, data: Dataset, device: torch.device) -> dict[str, Any]:
        """PGD-20 accuracy on the test split at the training epsilon."""
        return {
            "robust_accuracy": robust_accuracy(model, data.test, self.epsilon, EVAL_STEPS,
                                               device=device),
            "robust_eval": {"attack": "pgd", "steps": EVAL_STEPS, "epsilon": self.epsilon,
                            "step_size": 2.5 * self.epsilon / EVAL_STEPS,
                            "random_start": True, "seed": 0},
        }

    def state_dict(self) -> dict[str, Any]:
        """The number of training images seen, which sets the warm-up's epsilon."""
        return {"seen": self._seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._seen = int(state["seen"])

    def options(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "pgd_steps": self.pgd_steps,
                "pgd_step_size": self.pgd_step_size, "random_start": self.random_start,
                "warmup_epochs": self.warmup_epochs}
