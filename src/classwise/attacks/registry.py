"""The registry of backdoor attacks: a name on the command line maps to an attack class."""

from __future__ import annotations

from typing import Any

from classwise.attacks.base import BackdoorAttack
from classwise.registry import Registry

ATTACKS: Registry[BackdoorAttack] = Registry("attack", fixed=("image_shape", "seed"))
"""The attacks by name; their options are their constructors' keyword arguments."""

register_attack = ATTACKS.register


def make_attack(name: str, image_shape: tuple[int, int, int], seed: int = 0,
                **options: Any) -> BackdoorAttack:
    """The attack registered as ``name`` for images of ``image_shape`` ``(C, H, W)``."""
    return ATTACKS.create(name, image_shape, seed=seed, **options)
