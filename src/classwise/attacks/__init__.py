"""Backdoor (data-poisoning) attacks: one module per attack, a registry and a factory."""

from __future__ import annotations

from classwise.attacks.badnets import BadNets
from classwise.attacks.base import (
    BackdoorAttack,
    PoisonedSplit,
    attack_success_rate,
    validate_poison_args,
)
from classwise.attacks.blended import Blended
from classwise.attacks.registry import ATTACKS, make_attack, register_attack
from classwise.attacks.sig import SIG
from classwise.attacks.trojan import Trojan
from classwise.attacks.wanet import WaNet

__all__ = ["ATTACKS", "BackdoorAttack", "BadNets", "Blended", "PoisonedSplit", "SIG", "Trojan",
           "WaNet", "attack_success_rate", "make_attack", "register_attack",
           "validate_poison_args"]
