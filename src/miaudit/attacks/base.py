"""What every attack receives and the registry that names the attacks.

An attack is a function ``score(inputs: AttackInput, **params) -> ndarray (N,)`` whose
output is "higher means more likely a member". It is registered once, with the
observation fields it needs, so that the audit can refuse attacks that the exposure does
not allow.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from miaudit.errors import ConfigError, ExposureError
from miaudit.signals.exposure import FIELD_DESCRIPTIONS, Exposure, Observation
from miaudit.signals.transforms import logit_scaled_confidence, loss_from_logits


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
class References:
    """Reference ("shadow") models the attacker trained itself, so sees in full.

    Attributes
    ----------
    logits : ndarray (K, N, C)
        Each reference model's logits on the audited records.
    membership : ndarray (K, N) bool
        Whether record ``i`` was in reference model ``k``'s training set.
    labels : ndarray (N,) int
        True labels of the records.
    shadow : References or None
        The references on the records they were trained from, when those are not the
        audited records (offline references train on separate population data). Attacks
        that learn or tune on the references' own membership use :attr:`tuning`.
    variant_logits : ndarray (K, A, N, C) or None
        Logits on ``A`` augmented copies of each record (flips, shifts), for attacks that
        query several variants (Carlini et al. 2022, Sec. VI-A).
    """

    logits: np.ndarray
    membership: np.ndarray
    labels: np.ndarray
    shadow: References | None = None
    variant_logits: np.ndarray | None = None

    def variant(self, a: int) -> References:
        """The references queried with augmented variant ``a`` instead of the record."""
        return References(self.variant_logits[:, a], self.membership, self.labels)

    @property
    def tuning(self) -> References:
        """Models with known membership on records where IN and OUT both occur."""
        return self.shadow if self.shadow is not None else self

    @property
    def n_models(self) -> int:
        return int(self.membership.shape[0])

    @functools.cached_property
    def phi(self) -> np.ndarray:
        """LiRA's logit-scaled confidence of every reference on every record, (K, N)."""
        return np.stack([logit_scaled_confidence(z, self.labels) for z in self.logits])

    def p_true_at(self, temperature: float) -> np.ndarray:
        """Probability of the true label under ``softmax(logits / temperature)``, (K, N)."""
        return np.stack([np.exp(-loss_from_logits(z / temperature, self.labels))
                         for z in self.logits])

    @functools.cached_property
    def loss(self) -> np.ndarray:
        """Loss on the true label, (K, N)."""
        return np.stack([loss_from_logits(z, self.labels) for z in self.logits])


@dataclass(frozen=True)
class AttackInput:
    """Everything an attack may use.

    Attributes
    ----------
    target : Observation
        What the exposure releases of the target model.
    calibration : Calibration or None
        Records of known membership for cross-fitted thresholds.
    references : References or None
        Reference models on the same records (for LiRA, RMIA, Attack-R, Shokri).
    population : ndarray (N,) bool or None
        Records the attacker may use as population data (never in the target's training
        set): the ``z`` of RMIA and Attack-P. The audit passes the target's non-members; with
        offline references none of the references saw them either.
    target_variants : tuple of Observation
        The target queried with augmented variants of each record (same order as
        ``References.variant_logits``); empty when no augmentation is used.
    """

    target: Observation
    calibration: Calibration | None = None
    references: References | None = None
    population: np.ndarray | None = None
    target_variants: tuple[Observation, ...] = ()

    def query_pairs(self) -> list[tuple[Observation, References]]:
        """(target, references) for the record itself and each augmented variant that both
        sides have; attacks average over them."""
        pairs = [(self.target, self.references)]
        refs = self.references
        if self.target_variants and refs is not None and refs.variant_logits is not None:
            n = min(len(self.target_variants), refs.variant_logits.shape[1])
            pairs += [(self.target_variants[a], refs.variant(a)) for a in range(n)]
        return pairs


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
    min_references : int
        Reference models it needs (0 for reference-free attacks).
    reference_sides : frozenset of {"in", "out"}
        Which references it needs for every record: trained with it ("in", online
        attacks) and/or without it ("out").
    """

    name: str
    score: ScoreFn
    needs: frozenset[str]
    description: str
    reference: str
    uses_calibration: bool = False
    min_references: int = 0
    reference_sides: frozenset[str] = frozenset()

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


def attacks_allowed(exposure: Exposure, n_references: int = 0) -> list[str]:
    """Names of the registered attacks that ``exposure`` and the number of reference
    models allow, in registry order."""
    return [a.name for a in ATTACKS.values()
            if a.allowed_by(exposure) and a.min_references <= n_references]


def resolve_attacks(names: list[str] | None, exposure: Exposure, n_references: int = 0
                    ) -> list[Attack]:
    """Turn requested names (None = all allowed) into attacks, refusing disallowed ones."""
    if names is None:
        return [ATTACKS[n] for n in attacks_allowed(exposure, n_references)]
    if not names:
        raise ConfigError("No attack requested: give at least one attack name.")
    resolved: list[Attack] = []
    for name in names:
        attack = get_attack(name)
        if not attack.allowed_by(exposure):
            missing = sorted(attack.needs - exposure.fields)
            what = " and ".join(FIELD_DESCRIPTIONS[m] for m in missing)
            allowed = ", ".join(attacks_allowed(exposure, n_references)) or "none"
            raise ExposureError(
                f"The attack {attack.name!r} needs {what}, which the exposure "
                f"'{exposure}' does not release. Attacks allowed under '{exposure}': "
                f"{allowed}."
            )
        if attack.min_references > n_references:
            raise ConfigError(
                f"The attack {attack.name!r} needs at least {attack.min_references} "
                f"reference model(s); got {n_references}. Add --references K (for "
                f"example --references 8)."
            )
        if attack not in resolved:
            resolved.append(attack)
    return resolved
