"""What every attack receives and the registry that names the attacks.

An attack is a function ``score(inputs: AttackInput, **params) -> ndarray (N,)`` whose
output is "higher means more likely a member". It is registered once, with the
observation fields it needs, so that the audit can refuse attacks that the exposure does
not allow.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from miaudit.errors import ConfigError, ExposureError
from miaudit.signals.exposure import FIELD_DESCRIPTIONS, Exposure, Observation


@dataclass(frozen=True)
class Calibration:
    """Records whose membership the attacker is assumed to know, for fitting thresholds.

    Attacks that fit something on known records use *cross-fitting*: the records are
    split into folds, and the score of a record in fold ``f`` comes only from what was
    fitted on the other folds, so no record's own membership enters its score.

    Attributes
    ----------
    is_member : ndarray (N,) bool
    folds : ndarray (N,) int
        Fold index of each record, ``0 .. n_folds - 1``.
    """

    is_member: np.ndarray
    folds: np.ndarray

    @property
    def n_folds(self) -> int:
        return int(self.folds.max()) + 1


@dataclass(frozen=True)
class AttackInput:
    """Everything an attack may use: the target's observation (and calibration records)."""

    target: Observation
    calibration: Calibration | None = None


ScoreFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Attack:
    """A registered attack.

    Attributes
    ----------
    name : str
        The name used on the command line and in ``summary.json``.
    score : callable
        ``score(inputs: AttackInput, **params) -> ndarray (N,)``, higher = member.
    needs : frozenset of str
        Observation fields it reads (``logits``, ``probs``, ``loss``, ``predicted``).
    description : str
        One line for listings.
    reference : str
        The paper.
    uses_calibration : bool
        Whether it fits on records of known membership (cross-fitted).
    """

    name: str
    score: ScoreFn
    needs: frozenset[str]
    description: str
    reference: str
    uses_calibration: bool = False

    def allowed_by(self, exposure: Exposure) -> bool:
        return self.needs <= exposure.fields


ATTACKS: dict[str, Attack] = {}


def register_attack(attack: Attack) -> Attack:
    """Add an attack to the registry (names are unique)."""
    if attack.name in ATTACKS:
        raise ConfigError(f"An attack named {attack.name!r} is already registered.")
    ATTACKS[attack.name] = attack
    return attack


def get_attack(name: str) -> Attack:
    """Look an attack up by name; on a typo the error lists the known names."""
    key = name.strip().lower()
    if key in ATTACKS:
        return ATTACKS[key]
    close = difflib.get_close_matches(key, list(ATTACKS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"Unknown attack {name!r}.{hint} Known attacks: {', '.join(sorted(ATTACKS))}."
    )


def attacks_allowed(exposure: Exposure) -> list[str]:
    """Names of the registered attacks that ``exposure`` allows, in registry order."""
    return [a.name for a in ATTACKS.values() if a.allowed_by(exposure)]


def resolve_attacks(names: list[str] | None, exposure: Exposure) -> list[Attack]:
    """Turn requested names (None = all allowed) into attacks, refusing disallowed ones."""
    if names is None:
        return [ATTACKS[n] for n in attacks_allowed(exposure)]
    if not names:
        raise ConfigError("No attack requested: give at least one attack name.")
    resolved: list[Attack] = []
    for name in names:
        attack = get_attack(name)
        if not attack.allowed_by(exposure):
            missing = sorted(attack.needs - exposure.fields)
            what = " and ".join(FIELD_DESCRIPTIONS[m] for m in missing)
            allowed = ", ".join(attacks_allowed(exposure)) or "none"
            raise ExposureError(
                f"The attack {attack.name!r} needs {what}, which the exposure "
                f"'{exposure}' does not release. Attacks allowed under '{exposure}': "
                f"{allowed}."
            )
        if attack not in resolved:
            resolved.append(attack)
    return resolved
