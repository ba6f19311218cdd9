"""Membership-inference attacks: functions from observations to scores (higher = member).

Importing this package registers every built-in attack in :data:`ATTACKS`.
"""

# Registration order is listing order: cheapest attacks first.
from miaudit.attacks import reference_free  # noqa: I001
from miaudit.attacks import class_threshold
from miaudit.attacks import reference, shokri
from miaudit.attacks import label_only
from miaudit.attacks.base import (
    ATTACKS,
    Attack,
    AttackInput,
    Calibration,
    LabelQueries,
    References,
    attacks_allowed,
    default_attacks,
    get_attack,
    register_attack,
    resolve_attacks,
)

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackInput",
    "Calibration",
    "LabelQueries",
    "References",
    "attacks_allowed",
    "class_threshold",
    "default_attacks",
    "get_attack",
    "label_only",
    "reference",
    "reference_free",
    "register_attack",
    "resolve_attacks",
    "shokri",
]
