"""RMIA's offline ``a`` and temperature, tuned on reference models playing the target (for
the TPR at the lowest measurable FPR), never on the target."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import roc_auc_score, roc_curve

from miaudit.attacks import AttackInput, References
from miaudit.attacks import rmia as ref
from miaudit.attacks.rmia import (
    A_GRID,
    TEMPERATURE_GRID,
    RmiaTuning,
    rmia_offline,
    rmia_online,
    temperature_grid,
    tune_rmia,
)
from miaudit.errors import MiauditWarning
from miaudit.signals import observe
from miaudit.targets import check_outputs


def _leaky(membership, y, rng, c, difficulty, exposure_of):
    """Members get a sharper output, by a per-record amount (a few records leak a lot)."""
    k, n = membership.shape
    z = rng.normal(0, 1, (k, n, c))
    z[:, np.arange(n), y] += (difficulty + membership * exposure_of
                              + rng.normal(0, 0.5, (k, n)))
    return z


def _world(n=3000, k=8, c=5, seed=0, complementary=True):
    """``k`` references (in complementary pairs, as in the online game) and a target
    (model 0 of the returned logits), all on the same ``n`` records."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    m = np.zeros((k + 1, n), dtype=bool)
    m[0] = rng.random(n) < 0.5
    for j in range(1, k + 1, 2 if complementary else 1):
        m[j] = rng.random(n) < 0.5
        if complementary and j + 1 <= k:
            m[j + 1] = ~m[j]
    difficulty = rng.normal(0, 2, n)
    exposure_of = rng.exponential(1.5, n)
    return _leaky(m, y, rng, c, difficulty, exposure_of), m, y


def _inputs(logits, m, y, exposure="logits", shadow=None):
    target = observe(check_outputs(logits[0], "logits"), y, exposure)
    return AttackInput(target, references=References(logits[1:], m[1:], y, shadow))


def _levels(fpr):
    """The tuned range: 4 log-spaced FPRs per decade from ``fpr`` to 1e-2."""
    return np.geomspace(fpr, 1e-2, 1 + round(4 * np.log10(1e-2 / fpr)))


def _brute_objective(refs, k, others, mode, a, temperature, fpr):
    """TPR averaged over the tuned FPR range, and AUC, of one stand-in ``k`` with
    references ``others``, in linear space."""
    p = softmax(refs.logits / temperature, axis=-1)[:, np.arange(len(refs.labels)),
                                                    refs.labels]
    m = refs.membership
    om, po = m[others], p[others]
    with np.errstate(invalid="ignore"):
        mean_out = (po * ~om).sum(0) / (~om).sum(0)
        mean_in = (po * om).sum(0) / om.sum(0)
    usable = (~om).any(0) & (om.any(0) if mode == "online" else True)
    if mode == "online":
        marginal = 0.5 * (mean_in + mean_out)
    else:
        marginal = 0.5 * (1 + a) * mean_out + 0.5 * (1 - a)
    score, members = (p[k] / marginal)[usable], m[k, usable]
    fprs, tprs, _ = roc_curve(members, score)
    tpr = None if fpr is None else np.mean([tprs[fprs <= f + 1e-12].max()
                                             for f in _levels(fpr)])
    return tpr, roc_auc_score(members, score)


def _complement(m, k):
    hits = [j for j in range(len(m)) if np.array_equal(m[j], ~m[k])]
    return hits[0] if hits else None


def _brute_best(refs, tuning, mode, temperatures, a_grid=A_GRID, exclude_complement=True):
    """(best objective, its AUC) over the grid, by brute force on the same stand-ins."""
    m = refs.membership
    keys = []
    for temperature in temperatures:
        for a in (a_grid if mode == "offline" else [None]):
            figures = []
            for k in tuning.stand_ins:
                drop = {k, _complement(m, k) if exclude_complement else k}
                others = [j for j in range(len(m)) if j not in drop]
                figures.append(_brute_objective(refs, k, others, mode, a, temperature,
                                                tuning.fpr))
            tpr = np.mean([f[0] for f in figures]) if tuning.fpr else None
            auc = np.mean([f[1] for f in figures])
            keys.append(((auc if tpr is None else tpr), auc, a, temperature))
    return keys


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_tuning_maximises_the_tpr_at_the_lowest_measurable_fpr(mode):
    logits, m, y = _world()
    refs = References(logits[1:], m[1:], y)
    tuning = tune_rmia(refs, mode=mode)
    assert isinstance(tuning, RmiaTuning) and tuning.tuned
    assert len(tuning.stand_ins) == 4
    # 4 stand-ins with about 1,500 non-members each: 1e-3 needs 10,000 in all, 1e-2 1,000
    n_neg = sum(int((~m[1:][k]).sum()) for k in tuning.stand_ins)
    assert 1_000 <= n_neg < 10_000 and tuning.fpr == 1e-2
    keys = _brute_best(refs, tuning, mode, TEMPERATURE_GRID)
    best = max(k[0] for k in keys)
    assert tuning.objective == pytest.approx(best, abs=1e-9)
    tied = [k for k in keys if abs(k[0] - best) <= 1e-9]
    assert tuning.auc == pytest.approx(max(k[1] for k in tied), abs=1e-9)  # ties: AUC
    chosen = [k for k in keys if k[2] == tuning.a and k[3] == tuning.temperature]
    assert chosen[0][0] == pytest.approx(best, abs=1e-9)
    if mode == "online":
        assert tuning.a is None
    else:
        assert tuning.a in A_GRID
    assert tuning.temperature in TEMPERATURE_GRID
    d = tuning.to_dict()
    assert d["criterion"] == "TPR at FPR 0.01, ties broken by AUC"
    assert len(_levels(1e-2)) == 1 and len(_levels(1e-3)) == 5 and len(_levels(1e-4)) == 9
    assert d["stand_ins"] == list(tuning.stand_ins)


def test_the_tuned_range_reaches_down_to_the_lowest_measurable_level():
    """1e-3 is measurable with 10,000 non-members over the stand-ins, and is then the
    bottom of the range averaged over (1e-3 to 1e-2)."""
    logits, m, y = _world(n=6_000, k=8, seed=3)  # 4 stand-ins, about 3,000 non-members each
    refs = References(logits[1:], m[1:], y)
    tuning = tune_rmia(refs, mode="online")
    assert tuning.fpr == 1e-3
    assert tuning.to_dict()["criterion"] == ("mean TPR over FPR 0.001 to 0.01 (log-spaced), "
                                             "ties broken by AUC")
    keys = _brute_best(refs, tuning, "online", TEMPERATURE_GRID)
    assert tuning.objective == pytest.approx(max(k[0] for k in keys), abs=1e-9)
    assert tune_rmia(refs, mode="online", max_stand_ins=2).fpr == 1e-2  # 6,000 in all


def test_auc_decides_when_no_fpr_level_is_measurable():
    logits, m, y = _world(n=200, k=4)
    tuning = tune_rmia(References(logits[1:], m[1:], y), mode="offline")
    assert tuning.fpr is None and tuning.objective == tuning.auc
    keys = _brute_best(References(logits[1:], m[1:], y), tuning, "offline", TEMPERATURE_GRID)
    assert tuning.objective == pytest.approx(max(k[0] for k in keys), abs=1e-9)
    assert tuning.to_dict()["criterion"].startswith("AUC")


def test_the_target_never_enters_the_tuning():
    """Poison the target: whatever its outputs, the tuned a and temperature are those of
    the references alone, and RMIA without a and temperature equals RMIA given them."""
    logits, m, y = _world(seed=1)
    refs = References(logits[1:], m[1:], y)
    tuning = tune_rmia(refs, mode="offline")
    rng = np.random.default_rng(7)
    poisoned = logits.copy()
    poisoned[0] = rng.normal(0, 5, poisoned[0].shape)  # a target unlike any reference
    complement_like = logits.copy()
    complement_like[0] = logits[2]  # the target is a reference model's twin
    for lg in (logits, poisoned, complement_like):
        inputs = _inputs(lg, m, y)
        np.testing.assert_array_equal(
            rmia_offline(inputs),
            rmia_offline(inputs, a=tuning.a, temperature=tuning.temperature))
        np.testing.assert_array_equal(
            rmia_online(inputs),
            rmia_online(inputs, temperature=tune_rmia(refs, mode="online").temperature))


def _offline_world(seed=2, n_audited=3_000, complementary=True):
    """Offline references: 8 models on a pool of their own (in complementary pairs, as the
    offline game trains them), and their outputs on audited records none of them saw."""
    logits, m, y = _world(seed=seed, complementary=complementary)
    shadow = References(logits[1:], m[1:], y)
    rng = np.random.default_rng(seed + 10)
    y_aud = rng.integers(0, 5, n_audited)
    audited = _leaky(np.zeros((8, n_audited)), y_aud, rng, 5, rng.normal(0, 2, n_audited),
                     rng.exponential(1.5, n_audited))
    return References(audited, np.zeros((8, n_audited), bool), y_aud, shadow)


def _brute_complement_objective(refs, k, c, a, temperature, fpr):
    """One complement game by hand: stand-in ``k`` against ``c`` alone, ``k``'s training
    records as members and the audited records as non-members; the ratio in linear space,
    the ROC from scikit-learn."""
    def p_true(r):
        return softmax(r.logits / temperature, axis=-1)[:, np.arange(len(r.labels)),
                                                          r.labels]
    own, aud = p_true(refs.shadow), p_true(refs)
    members = refs.shadow.membership[k]
    p_k = np.concatenate([own[k, members], aud[k]])
    p_c = np.concatenate([own[c, members], aud[c]])
    score = p_k / (0.5 * (1 + a) * p_c + 0.5 * (1 - a))
    is_member = np.arange(len(score)) < members.sum()
    fprs, tprs, _ = roc_curve(is_member, score)
    return (np.mean([tprs[fprs <= f + 1e-12].max() for f in _levels(fpr)]),
            roc_auc_score(is_member, score))


def test_offline_stand_ins_play_their_complement_on_the_audited_records():
    """Offline references in pairs: each stand-in's one reference is its complement (no
    shared training record, like the target and its references) and its non-members are
    the audited records; the objective agrees with a hand computation, and the choice is
    the grid's best."""
    refs = _offline_world()
    tuning = tune_rmia(refs, mode="offline")
    assert tuning.game == "complements" and tuning.to_dict()["game"] == "complements"
    assert tuning.stand_ins == (0, 2, 4, 6)  # one per pair first
    assert tuning.fpr == 1e-3  # 4 games x 3,000 audited non-members: 1e-3 needs 10,000
    comp = {k: _complement(refs.shadow.membership, k) for k in tuning.stand_ins}
    keys = []
    for temperature in TEMPERATURE_GRID:
        for a in A_GRID:
            figs = [_brute_complement_objective(refs, k, comp[k], a, temperature, tuning.fpr)
                    for k in tuning.stand_ins]
            keys.append((np.mean([f[0] for f in figs]), np.mean([f[1] for f in figs]),
                         a, temperature))
    best = max(k[0] for k in keys)
    assert tuning.objective == pytest.approx(best, abs=1e-9)
    chosen = next(k for k in keys if k[2] == tuning.a and k[3] == tuning.temperature)
    assert chosen[0] == pytest.approx(best, abs=1e-9)
    assert chosen[1] == pytest.approx(tuning.auc, abs=1e-9)


def test_offline_references_without_pairs_play_each_other_on_their_pool():
    """Without complementary pairs (references given by the user, say) the stand-ins play
    the other references on the references' own pool, and the audited records' outputs
    are unused."""
    refs = _offline_world(complementary=False)
    tuning = tune_rmia(refs, mode="offline")
    assert tuning.game == "references"
    other = References(refs.logits + 1.0, refs.membership, refs.labels, refs.shadow)
    assert tune_rmia(other) == tuning == tune_rmia(refs.shadow)
    # references that trained on audited records are not offline: no complement game
    inside = References(refs.logits, np.eye(8, len(refs.labels), dtype=bool), refs.labels,
                        _offline_world().shadow)
    assert tune_rmia(inside).game == "references"


def test_the_stand_ins_complement_is_not_among_its_references():
    logits, m, y = _world(seed=4)
    refs = References(logits[1:], m[1:], y)
    games = ref._stand_in_games(refs.membership, "offline", 8)
    for k, others, _ in games:
        comp = _complement(refs.membership, k)
        assert comp is not None and comp not in others
        assert sorted([*others, k, comp]) == list(range(8))
    # one stand-in per complementary pair first
    first = [g[0] for g in games[:4]]
    assert len({_complement(refs.membership, k) for k in first} | set(first)) == 8
    tuning = tune_rmia(refs, mode="offline")
    kept = _brute_best(refs, tuning, "offline", TEMPERATURE_GRID)
    leaked = _brute_best(refs, tuning, "offline", TEMPERATURE_GRID, exclude_complement=False)
    assert tuning.objective == pytest.approx(max(k[0] for k in kept), abs=1e-9)
    assert max(k[0] for k in leaked) != pytest.approx(tuning.objective, abs=1e-6)


def test_without_complements_every_other_reference_is_kept():
    _, m, _ = _world(seed=5, complementary=False)
    games = ref._stand_in_games(m[1:], "offline", 4)
    assert [g[0] for g in games] == [0, 1, 2, 3]
    for k, others, _ in games:
        assert sorted([*others, k]) == list(range(8))


def test_temperature_is_tuned_only_when_the_exposure_releases_probabilities():
    assert temperature_grid(frozenset({"loss"})) == (1.0,)
    assert temperature_grid(frozenset({"logits", "loss"})) == TEMPERATURE_GRID
    logits, m, y = _world(seed=6)
    inputs = _inputs(logits, m, y, exposure="loss")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MiauditWarning)  # nothing to warn about
        np.testing.assert_array_equal(rmia_online(inputs), rmia_online(inputs, temperature=1.0))
        a = tune_rmia(inputs.references, temperatures=(1.0,)).a
        np.testing.assert_array_equal(rmia_offline(inputs),
                                      rmia_offline(inputs, a=a, temperature=1.0))
    with pytest.warns(MiauditWarning, match="temperature 2 cannot be applied"):
        rmia_online(inputs, temperature=2.0)


def test_too_few_references_fall_back_to_the_untuned_values():
    """One offline reference cannot play a target: ``a`` is the published value, not the
    grid's end (``a = 1`` trusts one reference's probability outright), and is recorded as
    untuned; a grid of one value is that value."""
    logits, m, y = _world(k=1, complementary=False)
    tuning = tune_rmia(References(logits[1:], m[1:], y), mode="offline")
    assert tuning == RmiaTuning(ref.UNTUNED_A, 1.0, None, None, None, ())
    assert not tuning.tuned and tuning.to_dict()["criterion"].startswith("not tuned")
    assert tune_rmia(References(logits[1:], m[1:], y), a_grid=(0.8,)).a == 0.8
    assert tune_rmia(References(logits[1:], m[1:], y), mode="online").a is None
    logits, m, y = _world(k=2)  # online: a stand-in without its complement has no references
    assert not tune_rmia(References(logits[1:], m[1:], y), mode="online").tuned
    assert tune_rmia(References(logits[1:], m[1:], y), mode="offline").tuned is False

