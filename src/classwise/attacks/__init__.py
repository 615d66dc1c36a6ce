"""Backdoor (data-poisoning) attacks: one module per attack, a registry and a factory."""

from __future__ import annotations

import inspect
from typing import Any

from classwise.attacks.badnets import BadNets
from classwise.attacks.base import (
    BackdoorAttack,
    PoisonedSplit,
    attack_success_rate,
    validate_poison_args,
)
from classwise.attacks.blended import Blended
from classwise.attacks.sig import SIG
from classwise.attacks.trojan import Trojan
from classwise.attacks.wanet import WaNet
from classwise.errors import UsageError

ATTACKS: dict[str, type[BackdoorAttack]] = {
    "badnets": BadNets, "blended": Blended, "trojan": Trojan, "sig": SIG, "wanet": WaNet,
}

__all__ = ["ATTACKS", "BackdoorAttack", "BadNets", "Blended", "PoisonedSplit", "SIG", "Trojan",
           "WaNet", "attack_success_rate", "make_attack", "validate_poison_args"]


def make_attack(name: str, image_shape: tuple[int, int, int], seed: int = 0,
                **options: Any) -> BackdoorAttack:
    """The attack registered as ``name`` for images of ``image_shape`` ``(C, H, W)``."""
    if name not in ATTACKS:
        raise UsageError(f"unknown attack {name!r}; choose one of {', '.join(sorted(ATTACKS))}")
    cls = ATTACKS[name]
    valid = [p for p in inspect.signature(cls).parameters if p not in ("image_shape", "seed")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r} for attack {name}; "
                         f"valid options are {', '.join(valid)}")
    return cls(image_shape, seed=seed, **options)
