"""Training settings: natural, backdoor, adversarial. Each shapes the training loop.

A setting may replace the training split (backdoor poisoning), perturb each batch
(adversarial examples), add figures to ``meta.json`` and write extra files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from classwise.data.base import Dataset, Split
from classwise.errors import UsageError


class Setting:
    """Natural (clean) training: the base every setting builds on."""

    name = "natural"

    def train_split(self, data: Dataset) -> Split:
        """The split the model is trained on."""
        return data.train

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch the model is trained on (identity for natural training)."""
        return x

    def evaluate(self, model: nn.Module, data: Dataset, device: torch.device) -> dict[str, Any]:
        """Setting-specific figures for ``meta.json``."""
        return {}

    def options(self) -> dict[str, Any]:
        """The setting's options, for ``meta.json``."""
        return {}

    def save_artifacts(self, out: Path) -> None:
        """Extra files (e.g. the trigger) written beside the model."""


def make_setting(name: str, data: Dataset, seed: int, **options: Any) -> Setting:
    """The setting ``name`` with its options, validated against ``data``."""
    if name == "natural":
        if options:
            raise UsageError(f"option(s) {', '.join(sorted(options))} do not apply to natural "
                             "training; drop them or choose --setting backdoor/adversarial")
        return Setting()
    if name == "backdoor":
        from classwise.training.backdoor import BackdoorSetting

        return BackdoorSetting(data, seed=seed, **options)
    if name == "adversarial":
        from classwise.training.adversarial import AdversarialSetting

        return AdversarialSetting(data, **options)
    raise UsageError(f"unknown setting {name!r}; choose natural, backdoor or adversarial")
