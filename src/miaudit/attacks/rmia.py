"""RMIA, the relative membership-inference attack (Zarifzadeh et al., "Low-Cost
High-Power Membership Inference Attacks", ICML 2024), online and offline, and the tuning
of its offline ``a`` and softmax temperature on the reference models (:func:`tune_rmia`).

RMIA's likelihood ratio is ``r(x) = Pr(x | target) / P(x)``, with ``P(x)`` from the
reference models (online: IN and OUT; offline: OUT, shrunk by ``a``); its score is the
fraction of population records ``z`` with ``r(z) <= r(x)`` (:func:`rmia_scores`), which
ranks the records exactly as ``r(x)`` does.

Every score is "higher = more likely a member". The reference models are the attacker's
own: it knows which records each was trained on (``References.membership``); the audited
records' membership is never read, and nothing is tuned on the target. Knowledge
(``Attack.knowledge``): ``references`` (the population, when the audit has one, rescales
the score without changing its ranking).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp
from scipy.stats import rankdata

from miaudit.attacks.base import Attack, AttackInput, References, register_attack
from miaudit.attacks.reference_signals import REFERENCES, unscored_records
from miaudit.errors import ConfigError, MiauditWarning
from miaudit.metrics import auc_delong, roc_counts
from miaudit.signals.exposure import Observation
from miaudit.signals.transforms import loss_from_logits

#: Offline ``a`` values tuned over (Zarifzadeh et al., Sec. 4): 0, 0.1, ..., 1.
A_GRID = tuple(float(a) for a in np.round(np.linspace(0.0, 1.0, 11), 2))
#: Softmax temperatures of ``Pr(x | model)`` tuned over when the exposure releases the
#: probability vector (or logits); overconfident models put members' probabilities at 1,
#: where ratios lose the target's signal, and a temperature above 1 keeps it.
TEMPERATURE_GRID = (1.0, 2.0, 4.0)
#: The FPR ladder RMIA is tuned on: the lowest level measurable on the stand-ins is the
#: bottom of the tuned range, the highest its top.
TUNING_FPRS = (1e-2, 1e-3, 1e-4)
#: A level ``f`` is measurable when the stand-ins together hold at least this many
#: non-members per ``1/f`` (their TPRs at ``f`` rest on about this many false positives in
#: all) and each holds at least ``1/f``.
TUNING_FALSE_POSITIVES = 10
#: FPR points per decade of the tuned range (log-spaced, ends included).
_POINTS_PER_DECADE = 4
#: Reference models that play the target in turn while tuning (the objective is their mean).
MAX_STAND_INS = 4
#: Offline ``a`` when too few references can play the target to tune it: the value ML
#: Privacy Meter ships for RMIA's offline attack (tuned by Zarifzadeh et al. on CIFAR-10),
#: not one chosen here. ``a = 1`` (no shrinkage) trusts one reference's probability
#: outright, the weakest choice with one or two references.
UNTUNED_A = 0.33

#: ``log`` of the IN references' mean ``Pr(x | model)``, their number, and the same for
#: the OUT references (see :func:`_log_means`).
_Means = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def temperature_grid(fields: Collection[str]) -> tuple[float, ...]:
    """The temperatures RMIA may tune over when the exposure releases ``fields``
    (``Exposure.fields`` or ``Observation.fields``): :data:`TEMPERATURE_GRID` when the
    probability vector or the logits are released, else ``(1.0,)`` (a loss or a top-k
    vector cannot be re-tempered).

    >>> temperature_grid(frozenset({"probs", "loss", "predicted"}))
    (1.0, 2.0, 4.0)
    >>> temperature_grid(frozenset({"loss"}))
    (1.0,)
    """
    return TEMPERATURE_GRID if {"logits", "probs"} & set(fields) else (1.0,)


def rmia_scores(ratio: np.ndarray, population_ratio: np.ndarray | None = None) -> np.ndarray:
    """RMIA's pairwise score (Zarifzadeh et al., ICML 2024): for each record x, the fraction
    of population records z with ``r(z) <= r(x)``, ties between records with the same
    fraction broken by ``r(x)``.

    **RMIA ranks records exactly as its likelihood ratio r(x) does.** The fraction is a
    non-decreasing function of ``r(x)``, and the tie-break ``u(x)``, the rank of ``r(x)``
    among the scored records scaled into [0, 1), is strictly increasing in it; so the score
    ``(count(x) + u(x)) / |Z|`` is a strictly increasing function of ``r(x)`` whatever the
    population, and every figure of the ROC (AUC, TPR at any FPR, epsilon bounds) is the
    one of ``r(x)`` itself. The population only puts the score on the paper's scale: its
    integer part over ``|Z|`` is the fraction of population records that ``x`` dominates.
    The same argument makes the paper's threshold ``gamma`` (count ``r(x) / r(z) >=
    gamma``) irrelevant to every reported figure, which is why it is not a parameter.

    Without population data (``population_ratio`` None), the scored records themselves
    play ``z`` (their membership is never read): the score is then the rank transform of
    ``r(x)``, with the same ROC.

    Sorting ``r(z)`` once and binary-searching gives O((N + Z) log Z) time and O(N + Z)
    memory; no N x Z matrix is formed.

    Parameters
    ----------
    ratio : ndarray (N,)
        ``r(x) = Pr(x | target) / Pr(x)``, or any increasing function of it (RMIA passes
        ``log r``); NaN for a record that cannot be scored (it stays NaN).
    population_ratio : ndarray (Z,) or None
        ``r(z)`` of the population records, by the same function; NaN entries are left out.

    Returns
    -------
    scores : ndarray (N,)
        In ``[0, (|Z| + 1) / |Z|)``. Higher = member.

    Example
    -------
    >>> s = rmia_scores(np.log([1.0, 4.0, 2.0]), np.log([0.5, 1.5, 3.0]))
    >>> np.round(s, 4).tolist()
    [0.3333, 1.2222, 0.7778]
    """
    ratio = np.asarray(ratio, dtype=np.float64)
    scored = ~np.isnan(ratio)
    r = ratio[scored]
    rz = r
    if population_ratio is not None:
        pz = np.asarray(population_ratio, dtype=np.float64)
        if (~np.isnan(pz)).any():
            rz = pz[~np.isnan(pz)]
    rz = np.sort(rz)
    out = np.full(ratio.shape, np.nan)
    if r.size:
        count = np.searchsorted(rz, r, side="right")
        tie_break = (rankdata(r, method="average") - 1.0) / r.size
        out[scored] = (count + tie_break) / rz.size
    return out


def observed_p_true(t: Observation, temperature: float) -> np.ndarray:
    """``Pr(x | model)`` from an observation: the tempered probability of the true label
    when the probability vector is released, else ``exp(-loss)`` (temperature 1)."""
    return np.exp(_log_p_true(t, temperature))


def _log_p_true(t: Observation, temperature: float) -> np.ndarray:
    """``log Pr(x | model)`` of an observation (see :func:`observed_p_true`)."""
    if temperature != 1.0:
        if t.logits is not None:
            return -loss_from_logits(t.logits / temperature, t.labels)
        if t.probs is not None:
            log_p = np.log(np.maximum(t.probs, 1e-300)) / temperature
            return -loss_from_logits(log_p, t.labels)
    return -t.loss


def _log_p_refs(refs: References, temperature: float) -> np.ndarray:
    """``log Pr(x | reference)`` (K, N), by the rule of :meth:`References.p_true_at`."""
    return -np.stack([loss_from_logits(z / temperature, refs.labels) for z in refs.logits])


def _effective_temperature(inputs: AttackInput, temperature: float) -> float:
    """The temperature RMIA can apply to this exposure: 1 (with a warning) when it
    releases no probability vector; a temperature that is not > 0 is refused."""
    if not temperature > 0:
        raise ConfigError(f"RMIA's temperature must be > 0, got {temperature}.")
    t = inputs.target
    if temperature != 1.0 and t.logits is None and t.probs is None:
        warnings.warn(
            "RMIA: this exposure releases no probability vector, so the temperature "
            f"{temperature:g} cannot be applied; RMIA uses temperature 1.",
            MiauditWarning, stacklevel=3,
        )
        return 1.0
    return temperature


def _log_means(log_p: np.ndarray, membership: np.ndarray) -> _Means:
    """``log`` of the IN and of the OUT references' mean ``Pr(x | model)`` (NaN where a
    side has none), and the numbers of IN and OUT references."""
    out = []
    for side in (membership, ~membership):
        n = side.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = logsumexp(np.where(side, log_p, -np.inf), axis=0) - np.log(np.maximum(n, 1))
        out += [np.where(n > 0, s, np.nan), n]
    return tuple(out)


def _log_marginal(means: _Means, mode: str, a: float | None) -> np.ndarray:
    """``log P(x)``. Online: the mean of the IN and OUT references' averages (balanced
    even when their numbers differ), one side's average where the other has none.
    Offline: ``(1 + a)/2 * mean_OUT + (1 - a)/2`` (NaN without an OUT reference)."""
    log_in, n_in, log_out, n_out = means
    with np.errstate(invalid="ignore", divide="ignore"):
        if mode == "online":
            both = np.logaddexp(log_in, log_out) - math.log(2.0)
            return np.where((n_in > 0) & (n_out > 0), both,
                            np.where(n_in > 0, log_in, log_out))
        shrink = math.log((1.0 - a) / 2.0) if a < 1.0 else -np.inf
        return np.logaddexp(math.log((1.0 + a) / 2.0) + log_out, shrink)


def _log_ratios(inputs: AttackInput, mode: str, a: float | None,
                temperature: float) -> tuple[np.ndarray, np.ndarray | None]:
    """``log r(x)`` of the audited records (averaged over augmented queries) and ``log
    r(z)`` of the population records (None without population data or its references'
    outputs), ``P`` by the same rule on both sides."""
    pairs = inputs.query_pairs()
    lp_target = logsumexp([_log_p_true(t, temperature) for t, _ in pairs], axis=0)
    lp_refs = logsumexp([_log_p_refs(refs, temperature) for _, refs in pairs], axis=0)
    log_n = math.log(len(pairs))
    means = _log_means(lp_refs - log_n, inputs.references.membership)
    log_r_x = lp_target - log_n - _log_marginal(means, mode, a)
    pop = inputs.population
    if pop is None or pop.reference_logits is None:
        return log_r_x, None
    membership = (np.zeros(pop.reference_logits.shape[:2], dtype=bool)
                  if pop.reference_membership is None else pop.reference_membership)
    pop_refs = References(pop.reference_logits, membership, pop.target.labels)
    means_z = _log_means(_log_p_refs(pop_refs, temperature), membership)
    return log_r_x, _log_p_true(pop.target, temperature) - _log_marginal(means_z, mode, a)


@dataclass(frozen=True)
class RmiaTuning:
    """RMIA's settings chosen on the references, never on the target (:func:`tune_rmia`).

    Attributes
    ----------
    a : float or None
        Offline ``a``; None for online RMIA.
    temperature : float
        Softmax temperature of ``Pr(x | model)``.
    fpr : float or None
        The bottom of the tuned FPR range, the lowest level of :data:`TUNING_FPRS`
        measurable on the stand-ins (the top is the highest, 1e-2); None when none was
        measurable (AUC was maximised) or nothing could be tuned.
    objective : float or None
        At the chosen values, the stand-ins' TPR averaged over log-spaced FPRs from
        ``fpr`` to 1e-2 (a single point, the TPR at 1e-2, when ``fpr`` is 1e-2), and over
        the stand-ins; their mean AUC when ``fpr`` is None; None when nothing could be
        tuned (too few references: then ``a =`` :data:`UNTUNED_A` and temperature 1 are
        used).
    auc : float or None
        The stand-ins' mean AUC at the chosen values (the tie-break of ``objective``).
    stand_ins : tuple of int
        The models of ``References.tuning`` that played the target.
    game : {"complements", "references"} or None
        How the stand-ins played: against their complement alone, with the audited records
        as non-members (offline references in complementary pairs), or against the other
        references on their own pool (see :func:`tune_rmia`); None when nothing was tuned.
    """

    a: float | None
    temperature: float
    fpr: float | None
    objective: float | None
    auc: float | None
    stand_ins: tuple[int, ...]
    game: str | None = None

    @property
    def tuned(self) -> bool:
        return self.objective is not None

    def to_dict(self) -> dict:
        """For ``summary.json``."""
        if not self.tuned:
            criterion = "not tuned (too few reference models to play the target)"
        elif self.fpr is None:
            criterion = "AUC (no FPR level measurable on the stand-ins)"
        else:
            top = max(TUNING_FPRS)
            span = (f"TPR at FPR {top:g}" if self.fpr >= top else
                    f"mean TPR over FPR {self.fpr:g} to {top:g} (log-spaced)")
            criterion = f"{span}, ties broken by AUC"
        return {"a": self.a, "temperature": self.temperature, "criterion": criterion,
                "fpr": self.fpr, "objective": self.objective, "auc": self.auc,
                "stand_ins": list(self.stand_ins), "game": self.game}


def _stand_in_games(membership: np.ndarray, mode: str,
                    max_stand_ins: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Up to ``max_stand_ins`` reference models ``k`` to play the target, each with its own
    references (every other model but ``k``'s complement, the model whose membership is the
    exact negation of ``k``'s, if any: in the online game the target's complement is never
    among its references either) and the records usable for it (OUT references among them;
    online, IN ones too). One stand-in per complementary pair first; a stand-in needs
    members and non-members among its usable records."""
    m = np.asarray(membership, dtype=bool)
    rows = {m[j].tobytes(): j for j in range(len(m))}
    complement = [rows.get((~m[k]).tobytes()) for k in range(len(m))]
    games: list[tuple[int, np.ndarray, np.ndarray]] = []
    for new_pairs_only in (True, False):
        for k in range(len(m)):
            chosen = [g[0] for g in games]
            if len(games) >= max_stand_ins or k in chosen:
                continue
            if new_pairs_only and complement[k] is not None and complement[k] in chosen:
                continue
            others = np.array([j for j in range(len(m)) if j not in (k, complement[k])],
                              dtype=int)
            if others.size == 0:
                continue
            om = m[others]
            usable = (~om).any(axis=0)
            if mode == "online":
                usable &= om.any(axis=0)
            members = m[k, usable]
            if members.any() and not members.all():
                games.append((k, others, usable))
    return games


def _complement_games(references: References,
                      max_stand_ins: int) -> list[tuple[int, int]]:
    """Offline stand-in games that mirror the target's: ``(k, c)`` with ``c`` the model
    trained on the exact complement of ``k``'s records, so ``k`` and its one reference
    share no training record, as the target and its references share none. ``k``'s
    members are its own training records (``c`` is OUT on them); its non-members are the
    audited records, on which no reference trained. Empty unless the references trained on
    a pool of their own (``References.shadow``) and are OUT on every audited record. One
    game per complementary pair first, then the pairs' other side."""
    if references.shadow is None or references.membership.any():
        return []
    m = np.asarray(references.shadow.membership, dtype=bool)
    rows = {m[j].tobytes(): j for j in range(len(m))}
    pairs = [(k, rows[(~m[k]).tobytes()]) for k in range(len(m))
             if (~m[k]).tobytes() in rows and m[k].any() and not m[k].all()]
    first = [(k, c) for k, c in pairs if k < c]
    return (first + [(k, c) for k, c in pairs if k > c])[:max_stand_ins]


def _better(key: tuple[float, float], best: tuple[float, float] | None) -> bool:
    """Whether ``key`` (objective, AUC) beats ``best``: a higher objective, or an equal
    one (within 1e-12) and a higher AUC."""
    if best is None:
        return True
    if key[0] > best[0] + 1e-12:
        return True
    return abs(key[0] - best[0]) <= 1e-12 and key[1] > best[1] + 1e-12


def _fpr_levels(low: float, high: float) -> np.ndarray:
    """Log-spaced FPR levels from ``low`` to ``high``, ends included."""
    n = 1 + max(0, round(_POINTS_PER_DECADE * math.log10(high / low)))
    return np.geomspace(low, high, n)


def _mean_tpr(score: np.ndarray, members: np.ndarray, levels: np.ndarray) -> float:
    """Mean over ``levels`` of the highest TPR over thresholds whose FPR is at most the
    level (:func:`~miaudit.metrics.tpr_at_fpr`, from one sort)."""
    _, tp, fp = roc_counts(score, members)
    at = np.searchsorted(fp / fp[-1], levels + 1e-12, side="right") - 1
    return float(np.mean(tp[at] / tp[-1]))


def tune_rmia(references: References, *, mode: str = "offline",
              temperatures: Sequence[float] = TEMPERATURE_GRID,
              a_grid: Sequence[float] = A_GRID, fprs: Sequence[float] = TUNING_FPRS,
              max_stand_ins: int = MAX_STAND_INS) -> RmiaTuning:
    """Choose RMIA's offline ``a`` and temperature on the references alone, for the TPR at
    low FPR, down to the lowest measurable level (Zarifzadeh et al., ICML 2024, Sec. 4 tune
    ``a`` on a reference model as stand-in target).

    Up to ``max_stand_ins`` reference models play the target in turn. Offline, with
    references in complementary pairs on a pool of their own (the offline game trains them
    so), a stand-in's one reference is its complement, the model trained on exactly the
    other records: the two share no training record, as the target and its references
    share none. Its members are its own training records, its non-members the audited
    records (no reference trained on them; their membership in the target is never read).
    Otherwise (online, or offline references without pairs), the models of
    ``references.tuning`` (the references on their own training pool) play the target, one
    per complementary pair first; each one's references are the other models minus its
    complement (the model whose membership is the exact negation of its own, if any: in
    the online game the target's complement is never among its references either), its
    records those of the pool that have the references the rule needs (OUT ones; online,
    IN ones too).
    The lowest measurable level ``f`` is the lowest of ``fprs`` at which the stand-ins
    together hold at least :data:`TUNING_FALSE_POSITIVES` / ``f`` non-members (about ten
    false positives in all) and each at least ``1 / f``: with 4 stand-ins of 2,500
    non-members (a 5,000-record online game) that is 1e-3; with 1,250 each, 1e-2. Each grid
    point is scored by the stand-ins' TPR (conservative: thresholds whose FPR is at most
    the level) averaged over log-spaced FPRs from ``f`` to the top of ``fprs`` (4 per
    decade) and over the stand-ins; ties are broken by the mean AUC, and with no
    measurable level the AUC decides. The average over the range rather than the TPR at
    ``f`` alone: on 16 Location30 games with 4 references (online game) the TPR at 1e-3
    alone picked temperature 1 for 9 of 16 targets (offline RMIA, TPR@0.1%FPR 10.7%; online
    13.0-14.2% by the measurability rule) where the range picks 2 (12.2%; online 15.7%);
    with 14 or 16 references the choices agree. RMIA ranks like its likelihood ratio (see
    :func:`rmia_scores`), so the ratio is scored directly and no population data is
    needed. The target is never read.

    Why complements offline: a stand-in that shares half its training records with its
    references (as any two random halves do) is predicted by them better than the target,
    which shares none, is by its own; that game is easier and, not seeing the target's
    false positives at the top of the ranking, chose ``a = 0`` where the targets did better
    at 0.1% FPR with a larger ``a``. Fresh offline games on Location30 (4 targets, 6
    seeds; ``python benchmarks/rmia_offline_tuning.py``; the targets' membership read only
    to score): with 4 references, TPR at 0.1% FPR 12.1% on average with the complement
    games against 9.7% with the shared-record ones and 8.5% for offline LiRA (above LiRA
    for 5 of 6 seeds), at 1% FPR 37.2% against 39.5% and 30.0%; with 2 references (one
    pair: no shared-record game exists, so ``a`` was :data:`UNTUNED_A` at temperature 1)
    8.2% against 7.0% and 6.5%. On Adult (3 seeds) 0.5% against 0.6% and 0.2%.

    Parameters
    ----------
    references : References
        The target's reference models (their ``tuning`` view is used).
    mode : {"offline", "online"}, default "offline"
        Offline tunes ``a`` and the temperature; online (``P(x)`` from IN and OUT
        references) the temperature only.
    temperatures : sequence of float, default TEMPERATURE_GRID
        Use :func:`temperature_grid` of the exposure's fields: ``(1.0,)`` when it releases
        neither probabilities nor logits.
    a_grid : sequence of float, default A_GRID (0, 0.1, ..., 1)
    fprs : sequence of float, default TUNING_FPRS (1e-2, 1e-3, 1e-4)
    max_stand_ins : int, default 4

    Returns
    -------
    RmiaTuning
        The chosen ``a`` (None online) and temperature, the objective, the stand-ins and
        their game. With too few references to play a target (offline: one reference, or
        two that are not a pair and share no OUT record; online: fewer than 3 without a
        complementary pair among them): ``a`` :data:`UNTUNED_A` (0.33; the grid's only
        value when it has one), the first temperature (1), ``objective`` None.
    """
    if mode not in ("online", "offline"):
        raise ConfigError(f"RMIA's mode must be 'online' or 'offline', got {mode!r}.")
    refs = references.tuning
    m = np.asarray(refs.membership, dtype=bool)
    a_values = tuple(float(a) for a in a_grid) if mode == "offline" else (None,)
    temperatures = tuple(float(t) for t in temperatures)
    pairs = _complement_games(references, max_stand_ins) if mode == "offline" else []
    games = [] if pairs else _stand_in_games(m, mode, max_stand_ins)
    if not (pairs or games):
        a = None if mode == "online" else (a_values[0] if len(a_values) == 1 else UNTUNED_A)
        return RmiaTuning(a, temperatures[0], None, None, None, ())
    if pairs:
        n_neg = [references.logits.shape[1]] * len(pairs)
        stand_ins, game = tuple(k for k, _ in pairs), "complements"
    else:
        n_neg = [int((~m[k, usable]).sum()) for k, _, usable in games]
        stand_ins, game = tuple(g[0] for g in games), "references"
    fpr = next((f for f in sorted(fprs) if sum(n_neg) * f >= TUNING_FALSE_POSITIVES - 1e-9
                and min(n_neg) * f >= 1.0 - 1e-9), None)
    levels = None if fpr is None else _fpr_levels(fpr, max(fprs))
    best_key, best = None, None
    for temperature in temperatures:
        parts = (_complement_parts(references, pairs, temperature) if pairs
                 else _reference_parts(refs, games, temperature))
        for a in a_values:
            tprs, aucs = [], []
            for log_p_k, members, means in parts:
                score = log_p_k - _log_marginal(means, mode, a)
                aucs.append(auc_delong(score, members)[0])
                if levels is not None:
                    tprs.append(_mean_tpr(score, members, levels))
            auc = float(np.mean(aucs))
            key = (float(np.mean(tprs)) if fpr is not None else auc, auc)
            if _better(key, best_key):
                best_key, best = key, (a, temperature)
    return RmiaTuning(best[0], best[1], fpr, best_key[0], best_key[1], stand_ins, game)


#: One stand-in game at one temperature: the stand-in's ``log Pr(x | model)`` on its
#: records, their membership, and its references' means (:func:`_log_means`).
_Part = tuple[np.ndarray, np.ndarray, _Means]


def _reference_parts(refs: References, games: list, temperature: float) -> list[_Part]:
    """Stand-ins against the other references, on the references' own pool."""
    log_p = _log_p_refs(refs, temperature)
    m = np.asarray(refs.membership, dtype=bool)
    return [(log_p[k, usable], m[k, usable],
             _log_means(log_p[np.ix_(others, usable)], m[np.ix_(others, usable)]))
            for k, others, usable in games]


def _complement_parts(references: References, pairs: list[tuple[int, int]],
                      temperature: float) -> list[_Part]:
    """Stand-ins against their complement alone: members from the references' pool,
    non-members the audited records (see :func:`_complement_games`)."""
    refs = references.tuning
    log_p, log_p_audited = _log_p_refs(refs, temperature), _log_p_refs(references, temperature)
    m = np.asarray(refs.membership, dtype=bool)
    parts = []
    for k, c in pairs:
        own, n_out = m[k], log_p_audited.shape[1]
        side = np.concatenate([log_p[c, own], log_p_audited[c]])[None]
        parts.append((np.concatenate([log_p[k, own], log_p_audited[k]]),
                      np.concatenate([np.ones(int(own.sum()), bool), np.zeros(n_out, bool)]),
                      _log_means(side, np.zeros(side.shape, dtype=bool))))
    return parts


def rmia_online(inputs: AttackInput, *, temperature: float | None = None) -> np.ndarray:
    """Online RMIA (Zarifzadeh et al., ICML 2024): ``r(x) = Pr(x | target) / P(x)`` with
    ``P(x)`` the mean of the IN and the OUT references' average ``Pr(x | model)``; the score
    is the fraction of population records ``z`` with ``r(z) <= r(x)`` (``P(z)`` by the same
    rule from ``inputs.population.reference_logits``), see :func:`rmia_scores`.

    RMIA's ranking equals the ranking by its likelihood ratio ``r(x)``: every figure of its
    ROC is that of ``r(x)``, and without population data the score is the rank transform of
    ``r(x)`` (the same ROC).

    Parameters
    ----------
    inputs : AttackInput
    temperature : float, optional
        Softmax temperature of ``Pr(x | model)``; None tunes it on the references
        (:func:`tune_rmia`, ``mode="online"``), never on the target.

    Returns
    -------
    scores : ndarray (N,)
        Higher = member.

    Knowledge: ``references`` (the population, when given, only rescales the score).
    """
    refs = inputs.references
    if temperature is None:
        temperature = tune_rmia(refs, mode="online",
                                temperatures=temperature_grid(inputs.target.fields)).temperature
    temperature = _effective_temperature(inputs, temperature)
    return rmia_scores(*_log_ratios(inputs, "online", None, temperature))


def rmia_offline(inputs: AttackInput, *, a: float | None = None,
                 temperature: float | None = None) -> np.ndarray:
    """Offline RMIA (Zarifzadeh et al., ICML 2024): ``r(x) = Pr(x | target) / P(x)`` with
    ``P(x) = (1 + a)/2 * mean_OUT + (1 - a)/2`` from the references trained without ``x``
    (the linear approximation of the IN references' average); the score is the fraction of
    population records ``z`` with ``r(z) <= r(x)`` (``P(z)`` by the same formula), see
    :func:`rmia_scores`.

    RMIA's ranking equals the ranking by its likelihood ratio ``r(x)``: every figure of its
    ROC is that of ``r(x)``, and without population data the score is the rank transform of
    ``r(x)`` (the same ROC).

    Parameters
    ----------
    inputs : AttackInput
    a : float in [0, 1], optional
        None tunes it on the references (:func:`tune_rmia`), never on the target.
    temperature : float, optional
        Softmax temperature of ``Pr(x | model)``; None tunes it with ``a``.

    Returns
    -------
    scores : ndarray (N,)
        Higher = member. NaN (with a :class:`~miaudit.errors.MiauditWarning`) for a record
        without an OUT reference; population records without one are left out of ``z``.

    Knowledge: ``references`` (the population, when given, only rescales the score).
    """
    refs = inputs.references
    if a is not None and not 0.0 <= a <= 1.0:
        raise ConfigError(f"RMIA's offline a must lie in [0, 1], got {a}.")
    unscored_records("rmia-offline", refs, {"out"})
    if a is None or temperature is None:
        tuning = tune_rmia(
            refs, mode="offline",
            temperatures=(temperature_grid(inputs.target.fields) if temperature is None
                          else (temperature,)),
            a_grid=A_GRID if a is None else (a,))
        a, temperature = tuning.a, tuning.temperature
    temperature = _effective_temperature(inputs, temperature)
    return rmia_scores(*_log_ratios(inputs, "offline", a, temperature))


register_attack(Attack(
    # knowledge: reference models; the population, when the audit has one, only rescales
    # the score (RMIA ranks as its likelihood ratio r(x) does, see rmia_scores)
    "rmia-online", rmia_online, frozenset({"loss"}),
    "likelihood ratio to IN+OUT references, ranked against population records",
    "Zarifzadeh et al., ICML 2024", min_references=2,
    reference_sides=frozenset({"in", "out"}), knowledge=REFERENCES,
))
register_attack(Attack(
    # knowledge: as rmia-online, with references trained without each record
    "rmia-offline", rmia_offline, frozenset({"loss"}),
    "likelihood ratio to OUT references, ranked against population records",
    "Zarifzadeh et al., ICML 2024", min_references=1, reference_sides=frozenset({"out"}),
    knowledge=REFERENCES,
))
