"""Attacks that compare the target with reference models (and population data).

Every score is "higher = more likely a member". The reference models are the attacker's
own: it knows which records each was trained on (``References.membership``).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import log_ndtr
from scipy.stats import rankdata

from miaudit.attacks.base import Attack, AttackInput, References, register_attack
from miaudit.errors import MiauditWarning
from miaudit.metrics import auc_with_ci
from miaudit.signals.exposure import PHI_MAX, Observation
from miaudit.signals.transforms import (
    logit_scaled_confidence,
    logit_scaled_confidence_from_loss,
    loss_from_logits,
)

#: Below this many reference models LiRA defaults to a global variance (Carlini et al.).
GLOBAL_VARIANCE_BELOW = 64
_MIN_STD = 1e-6


def observed_phi(t: Observation) -> np.ndarray:
    """Logit-scaled confidence of an observation: as :func:`~miaudit.signals.exposure.observe`
    computed it (by the references' rule); for a hand-built observation from logits when
    given, else from the loss (a loss of exactly 0 maps to :data:`PHI_MAX`)."""
    if t.phi is not None:
        return t.phi
    if t.logits is not None:
        return logit_scaled_confidence(t.logits, t.labels)
    return np.minimum(logit_scaled_confidence_from_loss(t.loss), PHI_MAX)


def _gaussian_fit(values: np.ndarray, mask: np.ndarray, per_example: bool):
    """Mean per record and standard deviation (per record, or pooled within records)
    of ``values[k, i]`` over the references ``k`` with ``mask[k, i]``.

    The global (pooled) variance is the within-record variance pooled over records; with a
    single reference per record it falls back to the spread across records, which keeps
    the ranking of the offline score (it depends on ``phi - mu_out`` only). A per-example
    standard deviation needs two references; records with fewer use the pooled one.
    """
    n = mask.sum(axis=0)
    safe = np.maximum(n, 1)
    mean = np.where(mask, values, 0.0).sum(axis=0) / safe
    sq = np.where(mask, (values - mean) ** 2, 0.0).sum(axis=0)
    dof = np.maximum(n - 1, 0).sum()
    if dof > 0:
        pooled = np.sqrt(sq.sum() / dof)
    else:  # one reference per record: only the spread across records is left
        pooled = np.std(values[mask]) if mask.any() else 1.0
    std = np.full(values.shape[1], pooled)
    if per_example:  # records with fewer than 2 references keep the pooled value
        std = np.where(n >= 2, np.sqrt(sq / np.maximum(n - 1, 1)), std)
    return mean, np.maximum(std, _MIN_STD), n


def _variance_mode(variance: str, n_refs: int) -> bool:
    if variance == "auto":
        return n_refs >= GLOBAL_VARIANCE_BELOW
    return variance == "per-example"


def _lira(phi: np.ndarray, refs: References, per_example: bool, online: bool) -> np.ndarray:
    mu_out, s_out, n_out = _gaussian_fit(refs.phi, ~refs.membership, per_example)
    offline = np.where(n_out > 0, log_ndtr((phi - mu_out) / s_out), 0.0)
    if not online:
        return offline
    mu_in, s_in, n_in = _gaussian_fit(refs.phi, refs.membership, per_example)
    score = (-0.5 * ((phi - mu_in) / s_in) ** 2 - np.log(s_in)
             + 0.5 * ((phi - mu_out) / s_out) ** 2 + np.log(s_out))
    # A record with no IN (or no OUT) reference cannot be scored online: the audit refuses
    # such designs; this keeps the arithmetic finite for direct callers.
    score = np.where(n_in == 0, offline, score)
    return np.where(n_out == 0, -0.5 * ((phi - mu_in) / s_in) ** 2, score)


def lira_online(inputs: AttackInput, *, variance: str = "auto") -> np.ndarray:
    """Online LiRA (Carlini et al., S&P 2022): ``log N(phi; mu_in, s_in^2) - log N(phi;
    mu_out, s_out^2)``, Gaussians fitted per record on references trained with (IN) and
    without (OUT) it; with augmented queries, the mean of the scores over the variants
    (one Gaussian per variant). ``variance``: ``"global"`` (pooled; default below 64
    references), ``"per-example"`` or ``"auto"``. Higher = member."""
    per_example = _variance_mode(variance, inputs.references.n_models)
    return np.mean([_lira(observed_phi(t), refs, per_example, online=True)
                    for t, refs in inputs.query_pairs()], axis=0)


def lira_offline(inputs: AttackInput, *, variance: str = "auto") -> np.ndarray:
    """Offline LiRA: ``log Phi((phi - mu_out) / s_out)``, a one-sided test against the
    references trained without the record (mean over augmented variants). Higher = member."""
    per_example = _variance_mode(variance, inputs.references.n_models)
    return np.mean([_lira(observed_phi(t), refs, per_example, online=False)
                    for t, refs in inputs.query_pairs()], axis=0)


def attack_r(inputs: AttackInput) -> np.ndarray:
    """Attack-R (Ye et al., CCS 2022): fraction of OUT reference models whose loss on the
    record is at least the target's. Higher = member."""
    refs = inputs.references
    out = ~refs.membership
    ge = (refs.loss >= inputs.target.loss[None, :]) & out
    return ge.sum(axis=0) / np.maximum(out.sum(axis=0), 1)


def attack_p(inputs: AttackInput) -> np.ndarray:
    """Attack-P (Ye et al., CCS 2022): fraction of population records whose target loss is
    at least the record's loss. A non-decreasing function of the loss, so its ROC is the
    LOSS attack's up to ties between population steps; the score reads as a calibrated
    p-value. Higher = member."""
    pop = np.sort(inputs.target.loss[inputs.population])
    below = np.searchsorted(pop, inputs.target.loss, side="left")
    return (len(pop) - below) / len(pop)


def rmia_scores(p_target: np.ndarray, p_marginal: np.ndarray, population: np.ndarray,
                gamma: float) -> np.ndarray:
    """RMIA's pairwise score (Zarifzadeh et al., ICML 2024): for each record x, the fraction
    of population records z with ``r(x) / r(z) >= gamma``, ``r = p_target / p_marginal``.

    Sorting ``r(z)`` once and binary-searching gives O((N + Z) log Z) time and O(N + Z)
    memory; no N x Z matrix is formed.

    The fraction is a step function of ``r(x)`` that saturates at 1 for every record beyond
    the largest ``r(z)``, which would tie the most exposed members with each other and with
    the top population records and blur the TPR at low FPR. Records with the same count are
    therefore ordered by ``r(x)`` itself, which the count already follows: the score is
    ``(count + u) / |Z|`` with ``u`` in [0, 1) the rank of ``r(x)`` scaled to below one step,
    so it lies in [0, (|Z| + 1) / |Z|) and its integer part over ``|Z|`` is the fraction.
    """
    ratio = p_target / np.maximum(p_marginal, 1e-300)
    rz = np.sort(ratio[population])
    count = np.searchsorted(rz, ratio / gamma, side="right")
    tie_break = (rankdata(ratio, method="average") - 1.0) / len(ratio)
    return (count + tie_break) / len(rz)


#: Default softmax temperature of RMIA's ``Pr(x | model)``. Overconfident models put
#: members' probabilities at 1, where ratios lose the target's signal; a temperature of 2
#: keeps it (Location30, 16 references: TPR@0.1%FPR 22.9% at 2, 12.9% at 1 and 12.5% at 4;
#: benchmarks/rmia_temperature.py).
RMIA_TEMPERATURE = 2.0


def observed_p_true(t: Observation, temperature: float) -> np.ndarray:
    """``Pr(x | model)`` from an observation: the tempered probability of the true label
    when the probability vector is released, else ``exp(-loss)`` (temperature 1)."""
    if temperature != 1.0:
        if t.logits is not None:
            return np.exp(-loss_from_logits(t.logits / temperature, t.labels))
        if t.probs is not None:
            log_p = np.log(np.maximum(t.probs, 1e-300)) / temperature
            return np.exp(-loss_from_logits(log_p, t.labels))
    return np.exp(-t.loss)


def _effective_temperature(inputs: AttackInput, temperature: float) -> float:
    t = inputs.target
    if temperature != 1.0 and t.logits is None and t.probs is None:
        warnings.warn(
            "RMIA: this exposure releases no probability vector, so the temperature "
            f"{temperature:g} cannot be applied; RMIA uses temperature 1.",
            MiauditWarning, stacklevel=3,
        )
        return 1.0
    return temperature


def _rmia_probabilities(inputs: AttackInput, temperature: float):
    """Target and reference ``Pr(x | model)``, averaged over the augmented variants."""
    temp = _effective_temperature(inputs, temperature)
    pairs = inputs.query_pairs()
    p_target = np.mean([observed_p_true(t, temp) for t, _ in pairs], axis=0)
    p_refs = np.mean([refs.p_true_at(temp) for _, refs in pairs], axis=0)
    return p_target, p_refs, temp


def _mean_in_out(p: np.ndarray, membership: np.ndarray):
    n_in, n_out = membership.sum(axis=0), (~membership).sum(axis=0)
    mean_in = np.where(membership, p, 0).sum(axis=0) / np.maximum(n_in, 1)
    mean_out = np.where(~membership, p, 0).sum(axis=0) / np.maximum(n_out, 1)
    return mean_in, mean_out, n_in, n_out


def _marginal_online(p: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """``P(x)``: the mean of the IN and OUT references' averages (balanced even when the
    numbers of IN and OUT references differ by one)."""
    mean_in, mean_out, n_in, n_out = _mean_in_out(p, membership)
    both = (n_in > 0) & (n_out > 0)
    return np.where(both, 0.5 * (mean_in + mean_out), np.where(n_in > 0, mean_in, mean_out))


def rmia_online(inputs: AttackInput, *, gamma: float = 1.0,
                temperature: float = RMIA_TEMPERATURE) -> np.ndarray:
    """Online RMIA: ``P(x)`` averaged over IN and OUT references. Higher = member."""
    p_target, p_refs, _ = _rmia_probabilities(inputs, temperature)
    marginal = _marginal_online(p_refs, inputs.references.membership)
    return rmia_scores(p_target, marginal, inputs.population, gamma)


A_GRID = np.round(np.linspace(0.0, 1.0, 11), 2)


def tune_offline_a(references, temperature: float = 1.0) -> float:
    """Tune RMIA's offline ``a`` (Zarifzadeh et al., Sec. 4): reference model 0 plays the
    target and the other models give its OUT average; the ``a`` of the grid 0, 0.1, ...,
    1 with the highest AUC wins, on the records where the stand-in has both members and
    non-members and at least one other model is OUT. Returns 1.0 (no shrinkage) when
    that cannot be measured."""
    refs = references.tuning
    if refs.n_models < 2:
        return 1.0
    p, m = refs.p_true_at(temperature), refs.membership
    usable = (~m[1:]).any(axis=0)
    members = m[0, usable]
    if members.all() or not members.any():
        return 1.0
    stand_in = p[0, usable]
    _, mean_out, _, _ = _mean_in_out(p[1:, usable], m[1:, usable])
    best_a, best_auc = 1.0, -1.0
    for a in A_GRID:
        marginal = 0.5 * (1 + a) * mean_out + 0.5 * (1 - a)
        scores = rmia_scores(stand_in, marginal, ~members, 1.0)
        auc, _ = auc_with_ci(scores, members)
        if auc > best_auc + 1e-12:
            best_a, best_auc = float(a), auc
    return best_a


def rmia_offline(inputs: AttackInput, *, gamma: float = 1.0, a: float | None = None,
                 temperature: float = RMIA_TEMPERATURE) -> np.ndarray:
    """Offline RMIA: ``P(x) = (1 + a)/2 * mean_OUT + (1 - a)/2``, with ``a`` tuned on a
    reference model as stand-in target unless given. Higher = member."""
    refs = inputs.references
    p_target, p_refs, temp = _rmia_probabilities(inputs, temperature)
    if a is None:
        a = tune_offline_a(refs, temp)
    _, mean_out, _, _ = _mean_in_out(p_refs, refs.membership)
    marginal = 0.5 * (1 + a) * mean_out + 0.5 * (1 - a)
    return rmia_scores(p_target, marginal, inputs.population, gamma)


register_attack(Attack(
    "attack-p", attack_p, frozenset({"loss"}),
    "fraction of population records with a higher target loss", "Ye et al., CCS 2022",
))
register_attack(Attack(
    "attack-r", attack_r, frozenset({"loss"}),
    "fraction of OUT references with a higher loss on the record", "Ye et al., CCS 2022",
    min_references=1, reference_sides=frozenset({"out"}),
))
register_attack(Attack(
    "lira-online", lira_online, frozenset({"loss"}),
    "likelihood ratio of IN vs OUT Gaussians of logit-scaled confidence",
    "Carlini et al., S&P 2022", min_references=2, reference_sides=frozenset({"in", "out"}),
))
register_attack(Attack(
    "lira-offline", lira_offline, frozenset({"loss"}),
    "one-sided test against OUT Gaussians of logit-scaled confidence",
    "Carlini et al., S&P 2022", min_references=1, reference_sides=frozenset({"out"}),
))
register_attack(Attack(
    "rmia-online", rmia_online, frozenset({"loss"}),
    "pairwise likelihood ratio against population records, IN+OUT references",
    "Zarifzadeh et al., ICML 2024", min_references=2,
    reference_sides=frozenset({"in", "out"}),
))
register_attack(Attack(
    "rmia-offline", rmia_offline, frozenset({"loss"}),
    "pairwise likelihood ratio against population records, OUT references only",
    "Zarifzadeh et al., ICML 2024", min_references=1, reference_sides=frozenset({"out"}),
))
