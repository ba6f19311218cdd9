"""What every attack receives and the registry that names the attacks.

An attack is a function ``score(inputs: AttackInput, **params) -> ndarray (N,)`` whose
output is "higher means more likely a member". It is registered once, with the
observation fields it needs and the knowledge it assumes (:data:`KNOWLEDGE`), so that the
audit can refuse attacks that the exposure does not allow and keep attacks that assume
more than the threat model grants out of its defaults.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Collection, Iterable
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
    features : ndarray (Z, D) or None
        The population records themselves (for attacks that learn from a record's
        features, :mod:`miaudit.attacks.quantile`); None when the audit has none.
    """

    target: Observation
    reference_logits: np.ndarray | None = None
    reference_membership: np.ndarray | None = None
    features: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.target.labels)


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
    features : ndarray (N, D) or None
        The audited records themselves, which the attacker holds (it asks about them);
        None when the audit has only precomputed outputs.
    """

    target: Observation
    calibration: Calibration | None = None
    references: References | None = None
    population: Population | None = None
    target_variants: tuple[Observation, ...] = ()
    label_queries: LabelQueries | None = None
    features: np.ndarray | None = None

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

#: Knowledge no real attacker has: attacks that need it run only when named, labelled.
ORACLE_KNOWLEDGE = frozenset({"known-members"})


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
        Whether it fits on records of known membership (cross-fitted); such an attack
        declares ``known-members``.
    min_references : int
        Reference models it needs (0 for reference-free attacks); more than 0 if and only
        if it declares ``references``.
    reference_sides : frozenset of {"in", "out"}
        Which references it needs for every record: trained with it ("in", online
        attacks) and/or without it ("out").
    needs_queries : bool
        Whether it queries the target on new (perturbed) inputs, which a model object
        allows and precomputed outputs do not; such an attack declares ``queries``.
    knowledge : frozenset of str
        What the attacker knows besides the target's release, drawn from
        :data:`KNOWLEDGE`; empty for an attack on the target's outputs alone. The fields
        of :class:`AttackInput` it reads follow from it: ``references`` (and
        ``LabelQueries.reference_*``), ``population``, ``calibration`` (``known-members``)
        and ``label_queries`` (``queries``); the target's release is always there.
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

    @property
    def oracle(self) -> bool:
        """Whether it uses knowledge no real attacker has (:data:`ORACLE_KNOWLEDGE`)."""
        return bool(self.knowledge & ORACLE_KNOWLEDGE)

    def describe_knowledge(self) -> list[str]:
        """Its knowledge keys, sorted (``[]``: the target's release alone), for
        ``summary.json`` and the report.

        Examples
        --------
        >>> from miaudit.attacks import get_attack
        >>> get_attack("loss").describe_knowledge()
        []
        >>> get_attack("label-augment-learned").describe_knowledge()
        ['queries', 'references']
        """
        return sorted(self.knowledge)


def knowledge_table(attacks: Iterable[Attack] | None = None) -> dict[str, list[str]]:
    """``{attack name: sorted knowledge keys}`` for ``attacks`` (default: every registered
    attack, in registry order)."""
    chosen = ATTACKS.values() if attacks is None else attacks
    return {a.name: a.describe_knowledge() for a in chosen}


ATTACKS: dict[str, Attack] = {}


def _check_knowledge(attack: Attack) -> None:
    """Refuse knowledge keys that are unknown or contradict the attack's other fields."""
    name = attack.name
    if not isinstance(attack.knowledge, frozenset):
        raise ConfigError(f"The attack {name!r} declares knowledge as a "
                          f"{type(attack.knowledge).__name__}; give a frozenset of keys of "
                          f"KNOWLEDGE ({', '.join(KNOWLEDGE)}).")
    unknown = sorted(attack.knowledge - set(KNOWLEDGE))
    if unknown:
        raise ConfigError(f"The attack {name!r} declares unknown knowledge {unknown}; known "
                          f"keys: {', '.join(KNOWLEDGE)}.")
    rules = (
        ("references", attack.min_references > 0,
         f"min_references={attack.min_references}"),
        ("known-members", attack.uses_calibration,
         f"uses_calibration={attack.uses_calibration}"),
        ("queries", attack.needs_queries, f"needs_queries={attack.needs_queries}"),
    )
    for key, flagged, flag in rules:
        if flagged != (key in attack.knowledge):
            have = "declares" if key in attack.knowledge else "does not declare"
            raise ConfigError(f"The attack {name!r} {have} the knowledge {key!r} but has "
                              f"{flag}: the two must agree.")
    if attack.reference_sides and "references" not in attack.knowledge:
        raise ConfigError(f"The attack {name!r} needs reference sides "
                          f"{sorted(attack.reference_sides)} but does not declare the "
                          "knowledge 'references'.")


def register_attack(attack: Attack) -> Attack:
    """Add an attack to the registry (names are unique; knowledge checked, see
    :class:`Attack`)."""
    if attack.name in ATTACKS:
        raise ConfigError(f"An attack named {attack.name!r} is already registered.")
    _check_knowledge(attack)
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


def threat_model(*, references: bool = False, population: bool = False,
                 queries: bool = False, known_members: bool = False) -> frozenset[str]:
    """The knowledge an audit grants its attacks by default: what its data allow, and the
    membership of other audited records only when asked for (oracle knowledge).

    Parameters
    ----------
    references : bool, default False
        The audit has reference models.
    population : bool, default False
        The audit has population data (:class:`Population`).
    queries : bool, default False
        The audit can query the target on new inputs (a model, not precomputed outputs).
    known_members : bool, default False
        Grant the oracle knowledge ``known-members`` to the defaults too.

    Returns
    -------
    knowledge : frozenset of str
        Keys of :data:`KNOWLEDGE`.

    Examples
    --------
    >>> sorted(threat_model(references=True, queries=True))
    ['queries', 'references']
    """
    return frozenset(k for k, on in (("references", references), ("population", population),
                                      ("queries", queries), ("known-members", known_members))
                     if on)


def _granted(knowledge: Collection[str] | None, n_references: int, queries: bool
             ) -> frozenset[str]:
    """``knowledge`` checked, or (None) the threat model the older arguments describe:
    references when there are any, queries when allowed, and population data (the
    behaviour of callers from before ``knowledge``)."""
    if knowledge is None:
        return threat_model(references=n_references > 0, population=True, queries=queries)
    granted = frozenset(knowledge)
    unknown = sorted(granted - set(KNOWLEDGE))
    if unknown:
        raise ConfigError(f"Unknown knowledge {unknown} in the threat model; known keys: "
                          f"{', '.join(KNOWLEDGE)}.")
    return granted


def _runs_with(attack: Attack, exposure: Exposure, n_references: int,
               granted: frozenset[str]) -> bool:
    return (attack.allowed_by(exposure) and attack.min_references <= n_references
            and attack.knowledge <= granted)


def attacks_allowed(exposure: Exposure, n_references: int = 0, *, queries: bool = False,
                    knowledge: Collection[str] | None = None) -> list[str]:
    """Names of the registered attacks that ``exposure``, the number of reference models
    and the granted ``knowledge`` allow, in registry order.

    Parameters
    ----------
    exposure : Exposure
    n_references : int, default 0
    queries : bool, default False
        Only when ``knowledge`` is None: whether label-only query attacks may run.
    knowledge : collection of str, optional
        The threat model (see :func:`threat_model`); an attack runs when its knowledge is a
        subset. None: references when ``n_references > 0``, queries when ``queries``, and
        population data, never ``known-members``.
    """
    granted = _granted(knowledge, n_references, queries)
    return [a.name for a in ATTACKS.values() if _runs_with(a, exposure, n_references, granted)]


def default_attacks(exposure: Exposure, n_references: int = 0, *, can_query: bool = False,
                    knowledge: Collection[str] | None = None) -> list[Attack]:
    """What runs when no attack is named: every attack the exposure, the references and
    the granted ``knowledge`` allow (see :func:`attacks_allowed`; ``can_query`` stands for
    ``queries`` when ``knowledge`` is None), except the label-only query attacks (which
    send many queries) when the exposure releases more than labels. Oracle knowledge
    (``known-members``) is in no default threat model, so its attacks run only when named
    or granted explicitly."""
    granted = _granted(knowledge, n_references, can_query)
    label_only = exposure.fields == frozenset({"predicted"})
    return [a for a in ATTACKS.values() if _runs_with(a, exposure, n_references, granted)
            and (label_only or not a.needs_queries)]


#: What to do when an audit lacks what an attack's knowledge needs.
_MISSING = {
    "references": "reference models, which this threat model does not grant",
    "population": "population data (records set aside from the audit that the target never "
                  "trained on), which this audit has none of: set population records aside "
                  "(a recipe game's population_fraction > 0, or offline references)",
    "queries": "queries to the model on perturbed inputs, which precomputed outputs cannot "
               "answer: audit a recipe (--model mlp) or a model object instead",
}


def resolve_attacks(names: list[str] | None, exposure: Exposure, n_references: int = 0,
                    *, can_query: bool = False, knowledge: Collection[str] | None = None
                    ) -> list[Attack]:
    """Turn requested names (None = :func:`default_attacks`) into attacks.

    A named attack is refused when the exposure does not release what it reads, when there
    are fewer reference models than it needs, or when it needs knowledge outside
    ``knowledge`` other than ``known-members``: an attack named explicitly may use the
    membership of other audited records (which the audit knows; it is labelled as
    oracle knowledge, :attr:`Attack.oracle`), but not data the audit does not have.
    ``knowledge`` and ``can_query`` as in :func:`default_attacks`.
    """
    granted = _granted(knowledge, n_references, can_query)
    if names is None:
        return default_attacks(exposure, n_references, knowledge=granted)
    if not names:
        raise ConfigError("No attack requested: give at least one attack name.")
    available = granted | ORACLE_KNOWLEDGE
    resolved: list[Attack] = []
    for name in names:
        attack = get_attack(name)
        if not attack.allowed_by(exposure):
            missing = sorted(attack.needs - exposure.fields)
            what = " and ".join(FIELD_DESCRIPTIONS[m] for m in missing)
            allowed = ", ".join(attacks_allowed(exposure, n_references,
                                                  knowledge=available)) or "none"
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
        missing = sorted(attack.knowledge - available)
        if missing:
            raise ConfigError(f"The attack {attack.name!r} needs "
                              + "; and ".join(_MISSING[k] for k in missing) + ".")
        if attack not in resolved:
            resolved.append(attack)
    return resolved
