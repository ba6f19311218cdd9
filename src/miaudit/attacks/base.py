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


#: What an attacker may know besides the target's release (``Attack.knowledge``):
#: ``references``: reference models it trained itself, with their membership;
#: ``population``: records set aside from the audit that the target never trained on, and
#: the target's (and references') outputs on them;
#: ``known-members``: the membership of other audited records (an oracle: off by default);
#: ``queries``: query access to the target on new, perturbed inputs.
KNOWLEDGE = {
    "references": "reference models trained by the attacker, with their membership",
    "population": "records set aside that the target never trained on",
    "known-members": "the membership of other audited records (oracle knowledge)",
    "queries": "queries to the target on new, perturbed inputs",
}


@dataclass(frozen=True)
class Population:
    """Population data: records set aside from the audit, never in the target's training
    set (RMIA's ``z``, Attack-P's reference distribution). Never the audited records'
    non-members.

    Attributes
    ----------
    target : Observation
        The target's release on the ``Z`` population records (same exposure).
    reference_logits : ndarray (K, Z, C) or None
        The reference models' logits on them, released the way the target is.
    reference_membership : ndarray (K, Z) bool or None
        Whether population record ``z`` was in reference ``k``'s training set (offline
        references train on the population; online ones never do).
    """

    target: Observation
    reference_logits: np.ndarray | None = None
    reference_membership: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(len(self.target.labels))


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
    population : Population or None
        Population data set aside from the audit (the ``z`` of RMIA and Attack-P); None
        when the audit has none.
    target_variants : tuple of Observation
        The target queried with augmented variants of each record (same order as
        ``References.variant_logits``); empty when no augmentation is used.
    label_queries : LabelQueries or None
        What label-only queries on perturbed inputs returned (label-only attacks).
    """

    target: Observation
    calibration: Calibration | None = None
    references: References | None = None
    population: Population | None = None
    target_variants: tuple[Observation, ...] = ()
    label_queries: LabelQueries | None = None

    def query_pairs(self) -> list[tuple[Observation, References]]:
        """(target, references) for the record itself and each augmented variant that both
        sides have; attacks average over them."""
        pairs = [(self.target, self.references)]
        refs = self.references
        if self.target_variants and refs is not None and refs.variant_logits is not None:
            n = min(len(self.target_variants), refs.variant_logits.shape[1])
            pairs += [(self.target_variants[a], refs.variant(a)) for a in range(n)]
        return pairs


@dataclass(frozen=True)
class LabelQueries:
    """Answers of label-only queries on perturbed copies of the audited records.

    The audit fills in what the chosen attacks need (see
    :mod:`miaudit.signals.label_queries` for how the copies are made).

    Attributes
    ----------
    augment_correct : ndarray (N, A) bool or None
        Whether the target still gives the true label to copy ``a`` of record ``i``.
    augment_levels : ndarray (A,) int or None
        The perturbation level (strength or variant) of each copy.
    augment_queries : int
        Queries to the target for ``augment_correct``.
    boundary_distance : ndarray (N,) or None
        Signed distance to the target's decision boundary (negative: misclassified).
    boundary_queries : int
        Queries to the target for ``boundary_distance``.
    reference_correct : ndarray (K, R, A) bool or None
        The same augmentation answers of the attacker's reference models on the records
        of ``References.tuning``, whose membership ``reference_membership (K, R)`` is known.
    """

    augment_correct: np.ndarray | None = None
    augment_levels: np.ndarray | None = None
    augment_queries: int = 0
    boundary_distance: np.ndarray | None = None
    boundary_queries: int = 0
    reference_correct: np.ndarray | None = None
    reference_membership: np.ndarray | None = None


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
    needs_queries : bool
        Whether it queries the target on new (perturbed) inputs, which a model object
        allows and precomputed outputs do not.
    knowledge : frozenset of str
        What the attacker knows besides the target's release, drawn from
        :data:`KNOWLEDGE`; empty for an attack on the target's outputs alone.
    """

    name: str
    score: ScoreFn
    needs: frozenset[str]
    description: str
    reference: str
    uses_calibration: bool = False
    min_references: int = 0
    reference_sides: frozenset[str] = frozenset()
    needs_queries: bool = False
    knowledge: frozenset[str] = frozenset()

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


def attacks_allowed(exposure: Exposure, n_references: int = 0, *, queries: bool = False
                    ) -> list[str]:
    """Names of the registered attacks that ``exposure`` and the number of reference
    models allow, in registry order; label-only query attacks only with ``queries``."""
    return [a.name for a in ATTACKS.values()
            if a.allowed_by(exposure) and a.min_references <= n_references
            and (queries or not a.needs_queries)]


def default_attacks(exposure: Exposure, n_references: int = 0, *, can_query: bool = False
                    ) -> list[Attack]:
    """What runs when no attack is named: every allowed attack; the label-only query
    attacks (which send many queries) only when the exposure releases nothing but labels."""
    queries = can_query and exposure.fields == frozenset({"predicted"})
    return [ATTACKS[n] for n in attacks_allowed(exposure, n_references, queries=queries)]


def resolve_attacks(names: list[str] | None, exposure: Exposure, n_references: int = 0,
                    *, can_query: bool = False) -> list[Attack]:
    """Turn requested names (None = :func:`default_attacks`) into attacks, refusing the
    ones the exposure, the references or the access (``can_query``) do not allow."""
    if names is None:
        return default_attacks(exposure, n_references, can_query=can_query)
    if not names:
        raise ConfigError("No attack requested: give at least one attack name.")
    resolved: list[Attack] = []
    for name in names:
        attack = get_attack(name)
        if not attack.allowed_by(exposure):
            missing = sorted(attack.needs - exposure.fields)
            what = " and ".join(FIELD_DESCRIPTIONS[m] for m in missing)
            allowed = ", ".join(attacks_allowed(exposure, n_references,
                                                  queries=can_query)) or "none"
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
        if attack.needs_queries and not can_query:
            raise ConfigError(
                f"The attack {attack.name!r} queries the model on perturbed inputs, which "
                "precomputed outputs cannot answer: audit a recipe (--model mlp) or a "
                "model object instead."
            )
        if attack not in resolved:
            resolved.append(attack)
    return resolved
