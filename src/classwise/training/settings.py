"""Training settings: natural, backdoor, adversarial. Each shapes the training loop.

A setting may replace the training split (backdoor poisoning), perturb each batch
(adversarial examples), add figures to ``meta.json`` and write extra files. Settings
register by name (:func:`register_setting`); their options are their constructors'
keyword arguments after ``data`` and ``seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from classwise.data.base import Dataset, Split
from classwise.registry import Registry


class Setting:
    """What every setting does unless it says otherwise: train on the clean split as is."""

    name: str

    def __init__(self, data: Dataset, seed: int = 0) -> None:
        """A setting is built for ``data``; ``seed`` fixes its random parts."""

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

    def state_dict(self) -> dict[str, Any]:
        """What a training checkpoint keeps of the setting (counters, the poisoned rows)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`; :class:`UsageError` if it belongs to another run."""


SETTINGS: Registry[Setting] = Registry("setting", fixed=("data", "seed"))
"""The training settings by name."""

register_setting = SETTINGS.register


@register_setting("natural")
class NaturalSetting(Setting):
    """Natural (clean) training: the model sees the training split unchanged."""


def make_setting(name: str, data: Dataset, seed: int, **options: Any) -> Setting:
    """The setting ``name`` with its options, validated against ``data``."""
    return SETTINGS.create(name, data, seed=seed, **options)
