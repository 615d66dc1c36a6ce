"""L-infinity projected gradient descent (Madry et al. 2018) and robust accuracy.

The attack thinks in [0, 1] pixels: it climbs the cross-entropy by signed gradient
steps and, after every step, projects back onto the epsilon ball around the clean
images and onto [0, 1]. It differentiates with respect to the input only, so it
leaves no gradients on the model's parameters and never changes its train/eval mode.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from classwise.batching import batches
from classwise.data.base import Split
from classwise.errors import UsageError
from classwise.models import resolve_device
from classwise.seeding import generator as seeded_generator


def check_pgd_args(epsilon: float, steps: int, step_size: float | None = None) -> float:
    """Validate the attack's settings; return the step size (default ``2.5 * epsilon / steps``)."""
    if not 0 < epsilon <= 1:
        raise UsageError(f"epsilon {epsilon} is outside (0, 1]; give an L-infinity radius in "
                         "pixel units, e.g. 0.3 or 0.031")
    if int(steps) != steps or steps < 1:
        raise UsageError(f"PGD steps must be a whole number of at least 1, got {steps}; "
                         "e.g. 7 for training, 20 for evaluation")
    if step_size is None:
        return 2.5 * epsilon / steps
    if not step_size > 0:
        raise UsageError(f"PGD step size must be positive, got {step_size}; leave it out for "
                         "the default 2.5 * epsilon / steps")
    return float(step_size)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, steps: int,
        step_size: float | None = None, random_start: bool = True,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Adversarial copies of ``x`` (float ``(N, C, H, W)`` in [0, 1]) that raise the loss on ``y``.

    ``step_size`` defaults to ``2.5 * epsilon / steps``. With ``random_start`` the search
    starts from a uniform point of the epsilon ball, drawn on the CPU from ``generator``
    (torch's global generator when None). The result is detached, same device and dtype.
    """
    step_size = check_pgd_args(epsilon, steps, step_size)
    x = x.detach()
    x_adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x_adv = (x_adv + (2 * noise - 1) * epsilon).clamp(0.0, 1.0)
    for _ in range(int(steps)):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(x_adv), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.clamp(torch.minimum(torch.maximum(x_adv, x - epsilon), x + epsilon),
                            0.0, 1.0)
    return x_adv.detach()


def robust_accuracy(model: nn.Module, split: Split, epsilon: float, steps: int = 20,
                    step_size: float | None = None, batch_size: int = 256, seed: int = 0,
                    device: str | torch.device | None = None) -> float:
    """Share of ``split`` that ``model`` still classifies correctly under PGD (PGD-20 default).

    The model is attacked as given (put it in eval mode first); ``device`` defaults to
    the model's; ``seed`` fixes the random starts.
    """
    step_size = check_pgd_args(epsilon, steps, step_size)
    device = resolve_device(model, device)
    gen = seeded_generator(seed)
    labels = torch.from_numpy(split.labels)
    correct = 0
    for chunk in batches(np.arange(len(split)), batch_size):
        x, y = split.load(chunk).to(device), labels[chunk].to(device)
        x_adv = pgd(model, x, y, epsilon, steps, step_size, generator=gen)
        with torch.no_grad():
            correct += int((model(x_adv).argmax(1) == y).sum())
    return correct / len(split)
