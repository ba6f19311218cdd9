"""Membership-inference attacks: functions from observations to scores (higher = member).

Importing this package registers every built-in attack in :data:`ATTACKS`.
"""

# Registration order is listing order: cheapest attacks first.
from miaudit.attacks import reference_free  # noqa: I001
from miaudit.attacks import class_threshold
from miaudit.attacks import reference, shokri
from miaudit.attacks.base import (
    ATTACKS,
    Attack,
    AttackInput,
    Calibration,
    References,
    attacks_allowed,
    get_attack,
    register_attack,
    resolve_attacks,
)

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackInput",
    "Calibration",
    "References",
    "attacks_allowed",
    "class_threshold",
    "get_attack",
    "reference",
    "reference_free",
    "register_attack",
    "resolve_attacks",
    "shokri",
]
