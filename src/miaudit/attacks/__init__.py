"""Membership-inference attacks: functions from observations to scores (higher = member).

Importing this package registers every built-in attack in :data:`ATTACKS`.
"""

# Registration order is listing order: cheapest attacks first.
from miaudit.attacks import reference_free  # noqa: I001
from miaudit.attacks import class_threshold
from miaudit.attacks import ye
from miaudit.attacks import difficulty
from miaudit.attacks import privacy_risk
from miaudit.attacks import quantile
from miaudit.attacks import lira
from miaudit.attacks import rmia
from miaudit.attacks import shokri
from miaudit.attacks import label_only
from miaudit.attacks.base import (
    ATTACKS,
    KNOWLEDGE,
    ORACLE_KNOWLEDGE,
    Attack,
    AttackInput,
    Calibration,
    LabelQueries,
    Population,
    References,
    attacks_allowed,
    default_attacks,
    get_attack,
    knowledge_table,
    register_attack,
    resolve_attacks,
    threat_model,
)

__all__ = [
    "ATTACKS",
    "KNOWLEDGE",
    "ORACLE_KNOWLEDGE",
    "Attack",
    "AttackInput",
    "Calibration",
    "LabelQueries",
    "Population",
    "References",
    "attacks_allowed",
    "class_threshold",
    "default_attacks",
    "difficulty",
    "get_attack",
    "knowledge_table",
    "label_only",
    "lira",
    "privacy_risk",
    "quantile",
    "reference_free",
    "register_attack",
    "resolve_attacks",
    "rmia",
    "shokri",
    "threat_model",
    "ye",
]
