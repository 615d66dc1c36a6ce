"""Backdoor training: a share of the training images carries a trigger and the target label."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from classwise.attacks import (
    ATTACKS,
    PoisonedSplit,
    attack_success_rate,
    make_attack,
    validate_poison_args,
)
from classwise.data.base import Dataset, Split
from classwise.errors import UsageError
from classwise.fileio import write_bytes, write_npz
from classwise.training.settings import Setting, register_setting


@register_setting("backdoor")
class BackdoorSetting(Setting):
    """Train on ``data.train`` poisoned by ``attack`` towards class ``target``.

    ``poison_rate`` defaults to the attack's ``default_rate`` (a share of the non-target
    images for dirty-label attacks, of the target class for clean-label ones). Other
    options (``size``, ``position``, ``alpha``, ...) go to the attack; ``seed`` fixes both
    the attack's random parts and which images are poisoned. Bad options raise
    :class:`UsageError` here, before any training.
    """

    def __init__(self, data: Dataset, seed: int = 0, attack: str | None = None,
                 target: int | str = 0, poison_rate: float | None = None,
                 **attack_options: Any) -> None:
        if attack not in ATTACKS.names():
            given = "needs an attack" if attack is None else f"has no attack {attack!r}"
            raise UsageError(f"the backdoor setting {given}; choose one of "
                             f"{', '.join(ATTACKS.names())}")
        self.target = data.class_index(target) if isinstance(target, str) else int(target)
        self.poison_rate = float(ATTACKS.get(attack).default_rate if poison_rate is None
                                 else poison_rate)
        validate_poison_args(self.target, data.num_classes, self.poison_rate)
        self.attack = make_attack(attack, data.image_shape, seed=seed, **attack_options)
        self.poisoned = self.attack.poison_indices(data.train.labels, self.target,
                                                   self.poison_rate, seed)

    def train_split(self, data: Dataset) -> Split:
        return PoisonedSplit(data.train, self.attack, self.poisoned, self.target)

    def evaluate(self, model: nn.Module, data: Dataset, device: torch.device) -> dict[str, Any]:
        """Attack success on the test split and the number of poisoned training images."""
        return {"attack_success_rate": attack_success_rate(model, data.test, self.attack,
                                                           self.target, device=device),
                "poisoned_images": len(self.poisoned)}

    def options(self) -> dict[str, Any]:
        """Attack name, target, poison rate and the attack's own options (its seed left out).

        ``train(..., setting="backdoor", seed=meta["seed"], **options())`` rebuilds the run.
        """
        own = {k: v for k, v in self.attack.options().items() if k not in ("name", "seed")}
        return {"attack": self.attack.name, "target": self.target,
                "poison_rate": self.poison_rate, **own}

    def state_dict(self) -> dict[str, Any]:
        """The poisoned rows, so a resumed training can check it poisons the same ones."""
        return {"poisoned": torch.from_numpy(self.poisoned)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Refuse a checkpoint whose training poisoned other rows (the data changed)."""
        if not np.array_equal(state["poisoned"].numpy(), self.poisoned):
            raise UsageError("the checkpoint's training poisoned other images than this run "
                             "would (the training data changed since); start afresh with "
                             "--force")

    def save_artifacts(self, out: Path) -> None:
        """``trigger.png`` (pattern, mask as alpha) and ``trigger.npz`` (pattern, mask, target)."""
        pattern, mask = self.attack.trigger()
        write_bytes(out / "trigger.png", trigger_png(pattern, mask))
        write_npz(out / "trigger.npz", pattern=pattern.astype(np.float32),
                  mask=mask.astype(np.float32), target=np.int64(self.target))


def trigger_png(pattern: np.ndarray, mask: np.ndarray) -> bytes:
    """PNG bytes of ``pattern`` (C, H, W) in [0, 1] with ``mask`` (H, W) as alpha (LA or RGBA)."""
    layers = np.concatenate([pattern, mask[None]]).transpose(1, 2, 0)
    pixels = np.round(np.clip(layers, 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")  # (H, W, 2) is LA, (H, W, 4) RGBA
    return buf.getvalue()
