"""Reference-model attacks against direct, slow computations, and reference games end to end."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, softmax
from sklearn.metrics import roc_auc_score, roc_curve

import miaudit
from miaudit.attacks import ATTACKS, AttackInput, Calibration, References
from miaudit.attacks.base import Population
from miaudit.attacks.lira import lira_offline, lira_online
from miaudit.attacks.rmia import rmia_offline, rmia_online, rmia_scores
from miaudit.attacks.ye import attack_p, attack_r
from miaudit.errors import ConfigError, MiauditWarning
from miaudit.signals import observe
from miaudit.targets import check_outputs

MODULE_ATTACKS = ["attack-p", "attack-r", "lira-online", "lira-offline", "rmia-online",
                  "rmia-offline"]


def _game(n=60, c=3, k=6, seed=0, n_pop=0):
    """Model 0 is the target, models 1..k its references; the last ``n_pop`` records are
    population data: never in the target, nor in the (online) references."""
    rng = np.random.default_rng(seed)
    total = n + n_pop
    y = rng.integers(0, c, total)
    membership = rng.random((k + 1, total)) < 0.5
    membership[1:, 0] = [True, False] * (k // 2)  # every record has IN and OUT refs
    membership[1:, 1] = [False, True] * (k // 2)
    for i in range(2, n):  # make sure each record has both sides among references
        membership[1, i], membership[2, i] = True, False
    membership[:, n:] = False
    difficulty = rng.normal(0, 1, total)
    logits = rng.normal(0, 1, (k + 1, total, c))
    logits[:, np.arange(total), y] += (2 * membership + difficulty
                                       + rng.normal(0, 0.3, (k + 1, total)))
    return logits, membership, y


def _inputs(logits, membership, y, exposure="logits", n_pop=0):
    n = len(y) - n_pop
    obs = observe(check_outputs(logits[0, :n], "logits"), y[:n], exposure)
    refs = References(logits[1:, :n], membership[1:, :n], y[:n])
    population = None
    if n_pop:
        pop_obs = observe(check_outputs(logits[0, n:], "logits"), y[n:], exposure)
        population = Population(pop_obs, logits[1:, n:], membership[1:, n:])
    return AttackInput(obs, references=refs, population=population)


def _phi(z, label):
    p = np.exp(z - z.max())
    p /= p.sum()
    return np.log(p[label]) - np.log(1 - p[label])


def _p_true(logits, y, temperature):
    return softmax(logits / temperature, axis=-1)[..., np.arange(len(y)), y]


def _count_direct(r_x, r_z):
    """RMIA's count by its N x Z definition, with the paper's gamma (small inputs only)."""
    return lambda gamma: (r_x[:, None] / r_z[None, :] >= gamma).sum(axis=1)


@pytest.mark.parametrize("name", MODULE_ATTACKS)
def test_members_score_higher_on_synthetic_data(name):
    logits, membership, y = _game(n=400, k=8, seed=11, n_pop=300)
    inputs = _inputs(logits, membership, y, n_pop=300)
    scores = ATTACKS[name].score(inputs)
    assert scores.shape == (400,) and np.isfinite(scores).all()
    assert roc_auc_score(membership[0, :400], scores) > 0.6, name


def test_knowledge_of_every_attack_in_this_module():
    knowledge = {name: ATTACKS[name].knowledge for name in MODULE_ATTACKS}
    assert knowledge["attack-p"] == {"population"}
    for name in MODULE_ATTACKS[1:]:
        assert knowledge[name] == {"references"}, name


@pytest.mark.parametrize("variance", ["per-example", "global"])
def test_lira_matches_direct_computation(variance):
    logits, membership, y = _game()
    n = len(y)
    scores_on = ATTACKS["lira-online"].score(_inputs(logits, membership, y), variance=variance)
    scores_off = ATTACKS["lira-offline"].score(_inputs(logits, membership, y), variance=variance)
    phis = np.array([[_phi(logits[m, i], y[i]) for i in range(n)] for m in range(len(logits))])
    ins = [phis[1:, i][membership[1:, i]] for i in range(n)]
    outs = [phis[1:, i][~membership[1:, i]] for i in range(n)]

    def pooled(groups):
        ss = sum(((g - g.mean()) ** 2).sum() for g in groups)
        return np.sqrt(ss / sum(len(g) - 1 for g in groups))

    if variance == "global":
        s_in = [pooled(ins)] * n
        s_out = [pooled(outs)] * n
    else:  # per record, or the pooled value where a record has a single reference
        s_in = [g.std(ddof=1) if len(g) > 1 else pooled(ins) for g in ins]
        s_out = [g.std(ddof=1) if len(g) > 1 else pooled(outs) for g in outs]
    for i in range(n):
        phi = phis[0, i]
        direct_on = (stats.norm.logpdf(phi, ins[i].mean(), s_in[i])
                     - stats.norm.logpdf(phi, outs[i].mean(), s_out[i]))
        direct_off = stats.norm.logcdf(phi, outs[i].mean(), s_out[i])
        assert scores_on[i] == pytest.approx(direct_on, rel=1e-6, abs=1e-6)
        assert scores_off[i] == pytest.approx(direct_off, rel=1e-6, abs=1e-6)


def test_lira_uses_the_loss_when_logits_are_hidden():
    logits, membership, y = _game(seed=2)
    a = ATTACKS["lira-online"].score(_inputs(logits, membership, y, "logits"))
    b = ATTACKS["lira-online"].score(_inputs(logits, membership, y, "loss"))
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_lira_scores_records_without_in_or_out_references_nan_and_warns():
    logits, membership, y = _game(seed=6)
    membership[1:, 5] = False   # record 5: OUT for every reference (no IN)
    membership[1:, 7] = True    # record 7: IN for every reference (no OUT)
    inputs = _inputs(logits, membership, y)
    with pytest.warns(MiauditWarning, match=r"lira-online: 2 of 60 record\(s\)"):
        on = lira_online(inputs)
    with pytest.warns(MiauditWarning, match=r"lira-offline: 1 of 60 record\(s\)"):
        off = lira_offline(inputs)
    assert np.isnan(on[[5, 7]]).all() and np.isfinite(np.delete(on, [5, 7])).all()
    assert np.isnan(off[7]) and np.isfinite(np.delete(off, 7)).all()
    with pytest.warns(MiauditWarning, match=r"attack-r: 1 of 60"):
        assert np.isnan(attack_r(inputs)[7])
    with pytest.warns(MiauditWarning, match=r"rmia-offline: 1 of 60"):
        s = rmia_offline(inputs, a=0.5, temperature=1.0)
    assert np.isnan(s[7]) and np.isfinite(np.delete(s, 7)).all()
    with warnings.catch_warnings():  # complete designs warn about nothing
        warnings.simplefilter("error", MiauditWarning)
        clean = _inputs(*_game(seed=6))
        for f in (lira_online, lira_offline, attack_r):
            f(clean)


def test_rmia_pairwise_count_matches_the_n_by_z_definition():
    rng = np.random.default_rng(0)
    r_x, r_z = rng.random(300) / rng.random(300), rng.random(120) / rng.random(120)
    s = rmia_scores(np.log(r_x), np.log(r_z))
    # the fraction is the integer part; a tie-breaker smaller than one step follows r(x)
    np.testing.assert_array_equal(np.floor(s * len(r_z) + 1e-9), _count_direct(r_x, r_z)(1.0))
    order = np.argsort(s, kind="stable")
    assert np.all(np.diff(r_x[order]) >= 0)  # higher score never means lower ratio
    # any increasing function of r gives the same scores (RMIA passes log r)
    np.testing.assert_array_equal(s, rmia_scores(r_x, r_z))
    assert np.isnan(rmia_scores(np.array([0.1, np.nan, 0.3]), r_z)[1])


def test_rmia_gamma_cannot_change_any_reported_figure():
    """The proof behind dropping gamma: with the tie-break, the score at any gamma is a
    strictly increasing function of r(x), so AUC and the whole ROC are those of r(x)."""
    rng = np.random.default_rng(1)
    n, z = 400, 150
    is_member = rng.random(n) < 0.5
    r_x = np.exp(rng.normal(0, 1, n) + 0.8 * is_member)
    r_z = np.exp(rng.normal(0, 1, z))
    tie_break = (stats.rankdata(r_x) - 1.0) / n
    count = _count_direct(r_x, r_z)
    curves = []
    for gamma in (1.0, 2.0, 0.5):
        score = (count(gamma) + tie_break) / z  # the former rmia_scores(..., gamma)
        assert len(np.unique(count(gamma))) < len(np.unique(score))  # the count alone ties
        fpr, tpr, _ = roc_curve(is_member, score)
        curves.append((roc_auc_score(is_member, score), fpr, tpr))
    fpr_r, tpr_r, _ = roc_curve(is_member, r_x)
    for auc, fpr, tpr in curves:
        assert auc == roc_auc_score(is_member, r_x)
        np.testing.assert_array_equal(fpr, fpr_r)
        np.testing.assert_array_equal(tpr, tpr_r)
    np.testing.assert_allclose(rmia_scores(r_x, r_z), (count(1.0) + tie_break) / z)


def test_rmia_online_and_offline_formulas():
    n, n_pop = 60, 40
    logits, membership, y = _game(seed=3, n_pop=n_pop)
    membership[1:4, n:] = True  # offline-style references trained on some population records
    inputs = _inputs(logits, membership, y, n_pop=n_pop)
    temp = 2.0
    p = _p_true(logits, y, temp)
    m = membership[1:]
    with np.errstate(invalid="ignore"):
        mean_in = (p[1:] * m).sum(0) / m.sum(0)
        mean_out = (p[1:] * ~m).sum(0) / (~m).sum(0)
    has_in = m.any(0)
    p_online = np.where(has_in, 0.5 * (mean_in + mean_out), mean_out)
    on = rmia_online(inputs, temperature=temp)
    expected = rmia_scores(p[0, :n] / p_online[:n], p[0, n:] / p_online[n:])
    np.testing.assert_allclose(on, expected, rtol=1e-12)
    p_offline = 0.7 * mean_out + 0.3
    off = rmia_offline(inputs, temperature=temp, a=0.4)
    r_x, r_z = p[0, :n] / p_offline[:n], p[0, n:] / p_offline[n:]
    np.testing.assert_allclose(off, rmia_scores(r_x, r_z), rtol=1e-12)
    np.testing.assert_array_equal(np.floor(off * n_pop + 1e-9), _count_direct(r_x, r_z)(1.0))


def test_rmia_without_population_ranks_like_with_it():
    n, n_pop = 200, 150
    logits, membership, y = _game(n=n, k=6, seed=8, n_pop=n_pop)
    with_pop = _inputs(logits, membership, y, n_pop=n_pop)
    without = AttackInput(with_pop.target, references=with_pop.references)
    no_ref_outputs = AttackInput(with_pop.target, references=with_pop.references,
                                 population=Population(with_pop.population.target))
    for f, kw in ((rmia_online, {"temperature": 2.0}),
                  (rmia_offline, {"a": 0.3, "temperature": 1.0})):
        a, b, c = f(with_pop, **kw), f(without, **kw), f(no_ref_outputs, **kw)
        assert not np.allclose(a, b)  # the population sets the scale ...
        np.testing.assert_array_equal(np.argsort(a), np.argsort(b))  # ... not the ranking
        np.testing.assert_array_equal(b, c)  # no reference outputs on z: no r(z)
        # without population the score is the rank transform of r(x)
        np.testing.assert_array_equal(stats.rankdata(b), stats.rankdata(a))
        assert roc_auc_score(membership[0, :n], a) == roc_auc_score(membership[0, :n], b)


def test_population_is_read_only_from_inputs_population():
    """Scores depend on the population records' outputs and never on the audited records'
    membership (which an AttackInput carries only as calibration, for other attacks)."""
    n, n_pop = 80, 60
    logits, membership, y = _game(n=n, seed=9, n_pop=n_pop)
    base = _inputs(logits, membership, y, n_pop=n_pop)
    rng = np.random.default_rng(0)
    for calibration in (Calibration(membership[0, :n], np.arange(n) % 2),
                        Calibration(rng.random(n) < 0.5, np.arange(n) % 2)):
        told = AttackInput(base.target, calibration=calibration, references=base.references,
                           population=base.population)
        for name in MODULE_ATTACKS:
            kw = {"temperature": 1.0} if name == "rmia-online" else {}
            kw = {"a": 0.5, "temperature": 1.0} if name == "rmia-offline" else kw
            np.testing.assert_array_equal(ATTACKS[name].score(told, **kw),
                                          ATTACKS[name].score(base, **kw))
    shifted = logits.copy()
    shifted[0, n:] += rng.normal(0, 2, shifted[0, n:].shape)  # the target on z only
    other = _inputs(shifted, membership, y, n_pop=n_pop)
    np.testing.assert_array_equal(other.target.loss, base.target.loss)
    for name in ("attack-p", "rmia-online"):
        assert not np.array_equal(ATTACKS[name].score(other), ATTACKS[name].score(base))
    with pytest.raises(ConfigError, match=r"attack-p .* population"):
        attack_p(AttackInput(base.target, references=base.references))


def test_attack_p_matches_direct_counts():
    n, n_pop = 60, 45
    logits, membership, y = _game(seed=4, n_pop=n_pop)
    inputs = _inputs(logits, membership, y, n_pop=n_pop)
    pop = inputs.population.target.loss
    direct = [(pop >= inputs.target.loss[i]).mean() for i in range(n)]
    np.testing.assert_allclose(attack_p(inputs), direct)


def _attack_r_fraction(inputs):
    """The discrete Attack-R: fraction of OUT references with a loss >= the target's."""
    refs = inputs.references
    out = ~refs.membership
    return ((refs.loss >= inputs.target.loss[None]) & out).sum(0) / out.sum(0)


def test_attack_r_is_the_smoothed_percentile_of_the_out_references():
    logits, membership, y = _game(seed=4)
    inputs = _inputs(logits, membership, y)
    n = len(y)
    phis = np.array([[_phi(logits[m, i], y[i]) for i in range(n)] for m in range(len(logits))])
    outs = [phis[1:, i][~membership[1:, i]] for i in range(n)]
    spread = np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in outs)
                     / sum(len(g) - 1 for g in outs))
    score = attack_r(inputs)
    for i in range(n):
        h = (4 / 3) ** 0.2 * spread * len(outs[i]) ** -0.2  # Silverman's rule
        smoothed = stats.norm.cdf((phis[0, i] - outs[i]) / h).mean()
        assert expit(score[i]) == pytest.approx(smoothed, rel=1e-9)
    # within a record, a lower target loss never lowers the score
    lower = logits.copy()
    lower[0, np.arange(n), y] += 0.5
    assert (attack_r(_inputs(lower, membership, y)) > score).all()


def test_attack_r_continuous_keeps_the_auc_and_breaks_ties():
    rng = np.random.default_rng(5)
    n, k = 600, 32
    y = rng.integers(0, 4, n)
    membership = np.zeros((k + 1, n), dtype=bool)
    membership[0] = rng.random(n) < 0.5
    membership[1:] = rng.random((k, n)) < 0.5
    difficulty = rng.normal(0, 1.5, n)
    logits = rng.normal(0, 1, (k + 1, n, 4))
    logits[:, np.arange(n), y] += 1.5 * membership + difficulty + rng.normal(0, 0.7, (k + 1, n))
    inputs = _inputs(logits, membership, y)
    continuous, discrete = attack_r(inputs), _attack_r_fraction(inputs)
    is_member = membership[0]
    auc_c, auc_d = roc_auc_score(is_member, continuous), roc_auc_score(is_member, discrete)
    assert auc_c > 0.6 and abs(auc_c - auc_d) < 0.01
    assert len(np.unique(discrete)) < n / 4  # (K_out + 1 values per record's K_out)
    assert len(np.unique(continuous)) == n
    # the records every reference's loss exceeds all tie in the discrete version, not here
    top = discrete == 1.0
    assert top.sum() > 5 and len(np.unique(continuous[top])) == top.sum()


def test_attack_r_separates_records_far_beyond_every_reference():
    """Saturated members (target loss far below every reference's) stay apart: the score
    is a log-odds computed in log space, not a fraction that rounds to 1."""
    y = np.zeros(3, int)
    refs_phi = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    target_phi = np.array([20.0, 30.0, 39.0])

    def logits(phi):
        return np.stack([phi, np.zeros_like(phi)], axis=-1)

    inputs = AttackInput(observe(check_outputs(logits(target_phi), "logits"), y, "logits"),
                         references=References(logits(refs_phi), np.zeros((3, 3), bool), y))
    s = attack_r(inputs)
    assert np.isfinite(s).all() and s[0] < s[1] < s[2]
    assert (_attack_r_fraction(inputs) == 1.0).all()


def test_augmented_queries_average_over_variants():
    logits, membership, y = _game(seed=5)
    rng = np.random.default_rng(0)
    variants = logits[:, None] + rng.normal(0, 0.3, (logits.shape[0], 2, *logits.shape[1:]))
    plain = _inputs(logits, membership, y)
    obs_v = tuple(observe(check_outputs(variants[0, a], "logits"), y, "logits")
                  for a in range(2))
    refs_v = References(logits[1:], membership[1:], y, variant_logits=variants[1:])
    augmented = AttackInput(plain.target, references=refs_v, target_variants=obs_v)
    per_query = [plain] + [
        AttackInput(obs_v[a], references=References(variants[1:, a], membership[1:], y))
        for a in range(2)]
    for name in ("lira-online", "lira-offline"):
        expected = np.mean([ATTACKS[name].score(q) for q in per_query], axis=0)
        np.testing.assert_allclose(ATTACKS[name].score(augmented), expected)
    # RMIA averages Pr(x | model) over the queries, then forms the ratio
    p_t = np.mean([_p_true(z, y, 2.0) for z in (logits[0], variants[0, 0], variants[0, 1])],
                  axis=0)
    p_r = np.mean([_p_true(z, y, 2.0) for z in (logits[1:], variants[1:, 0], variants[1:, 1])],
                  axis=0)
    m = membership[1:]
    marginal = 0.5 * ((p_r * m).sum(0) / m.sum(0) + (p_r * ~m).sum(0) / (~m).sum(0))
    np.testing.assert_allclose(rmia_online(augmented, temperature=2.0),
                               rmia_scores(p_t / marginal))


# --- end to end, through miaudit.audit ------------------------------------------------


@pytest.fixture(scope="module")
def noisy_refs(tmp_path_factory):
    """A small task with 20% flipped labels: an MLP must memorise them, so it leaks."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 10))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + 2 * (X[:, 2] > 0)
    flip = rng.random(800) < 0.2
    y[flip] = rng.integers(0, 4, flip.sum())
    path = tmp_path_factory.mktemp("noisy") / "noisy.npz"
    np.savez(path, X=X, y=y)
    return miaudit.audit(data=path, model="mlp",
                         model_params={"hidden": (64,), "epochs": 40, "lr": 0.01},
                         references=5, targets=2,
                         attacks=["loss", "lira-online", "lira-offline", "rmia-online",
                                  "rmia-offline", "attack-r", "shokri"])


def test_reference_game_outputs(noisy_refs):
    s = noisy_refs.summary()
    sig = noisy_refs.signals
    n = s["data"]["n_records_in_game"]
    # 5 references round up to 6, plus the target and its complement: 8 models
    assert sig["membership"].shape == (8, n) and sig["logits"].shape == (8, n, 4)
    assert (sig["membership"].sum(axis=0) == 4).all()  # each record IN for half the models
    # the target pair is drawn per record (complementary); the reference pairs are halves
    assert (sig["membership"][0] != sig["membership"][1]).all()
    assert (sig["membership"][2:].sum(axis=1) == n // 2).all()
    assert len(noisy_refs.scores) == 2 * n
    assert set(noisy_refs.scores["target"]) == {0, 1}
    for name, entry in s["attacks"].items():
        assert entry["pooled_over_targets"] == 2
        assert len(entry["per_target"]) == 2
        lo, hi = entry["mean_over_targets"]["auc_ci"]
        assert lo <= entry["mean_over_targets"]["auc"] <= hi
        pooled = noisy_refs.scores
        assert entry["auc"] == pytest.approx(roc_auc_score(pooled.is_member, pooled[name]))
        assert entry["auc"] > 0.5, name
    assert s["target"]["references"] == 6 and s["settings"]["references"] == 6


def test_offline_references_never_see_audited_records():
    result = miaudit.audit(data="wine", model="logistic", model_params={"epochs": 20},
                           references=2, reference_mode="offline", targets=1,
                           attacks=["lira-offline", "rmia-offline", "attack-r", "shokri"])
    sig = result.signals
    assert not sig["membership"][1:].any()  # references: OUT for every audited record
    # the target's membership is drawn per record with probability 1/2
    assert abs(sig["membership"][0].sum() - sig["membership"].shape[1] / 2) < 4 * np.sqrt(
        sig["membership"].shape[1])
    s = result.summary()
    assert s["data"]["n_population_records"] == s["data"]["n_records_in_game"]


def test_online_attacks_need_in_references():
    with pytest.raises(ConfigError, match="references trained on each record"):
        miaudit.audit(data="wine", model="logistic", model_params={"epochs": 2}, references=2,
                      reference_mode="offline", attacks=["lira-online"])
    with pytest.raises(ConfigError, match="needs at least 2 reference"):
        miaudit.audit(data="wine", model="logistic", references=1, reference_mode="offline",
                      attacks=["rmia-online"])
    with pytest.raises(ConfigError, match="targets must lie between 1 and 4"):
        miaudit.audit(data="wine", model="logistic", references=2, targets=5)
    with pytest.raises(ConfigError, match="between 1 and 1 without references"):
        miaudit.audit(data="wine", model="logistic", reference_mode="offline", targets=2)


def test_references_exclude_the_targets_complement():
    """Every record is IN for exactly half of each target's references, member or not."""
    result = miaudit.audit(data="wine", model="logistic", model_params={"epochs": 2},
                           references=4, targets=3, attacks=["lira-online"])
    membership = result.signals["membership"]
    assert membership.shape[0] == 6
    for t in range(3):
        refs = [m for m in range(6) if m not in (t, t ^ 1)]
        assert (membership[refs].sum(axis=0) == 2).all()


@pytest.mark.parametrize("variance", ["global", "per-example"])
def test_an_untrained_model_shows_no_leakage(variance):
    """The null: a model that learned nothing must not look leaky to any attack."""
    result = miaudit.audit(data="digits", model="logistic", model_params={"lr": 1e-9,
                           "epochs": 1}, references=3, targets=4, lira_variance=variance,
                           attacks=["loss", "lira-online", "lira-offline", "rmia-online",
                                    "rmia-offline", "attack-r", "shokri", "calibrated-loss",
                                    "privacy-risk", "quantile"])
    for name, m in result.summary()["attacks"].items():
        assert abs(m["auc"] - 0.5) < 0.03, (name, m["auc"])
        assert m["tpr_at_fpr"]["0.01"] < 0.03, (name, m["tpr_at_fpr"]["0.01"])
    assert result.summary()["verdict"]["level"] == "none"


def test_an_untrained_model_shows_no_leakage_offline():
    """The null with offline references, whose RMIA tuning plays each reference against
    its complement on the audited records: still nothing to find."""
    result = miaudit.audit(data="digits", model="logistic", model_params={"lr": 1e-9,
                           "epochs": 1}, references=4, reference_mode="offline", targets=4,
                           attacks=["loss", "lira-offline", "rmia-offline", "attack-r",
                                    "calibrated-loss", "privacy-risk", "quantile"])
    summary = result.summary()
    for name, m in summary["attacks"].items():
        assert abs(m["auc"] - 0.5) < 0.04, (name, m["auc"])
        assert m["tpr_at_fpr"]["0.01"] < 0.04, (name, m["tpr_at_fpr"]["0.01"])
    tuning = summary["attacks"]["rmia-offline"]["tuning"]
    assert {t["game"] for t in tuning} == {"complements"}
    assert summary["verdict"]["level"] == "none"


def test_location30_lira_beats_loss_at_low_fpr(shared_file):
    path = shared_file("location30.npz")
    result = miaudit.audit(data=path, model="mlp", references=8,
                           attacks=["loss", "lira-online", "rmia-online"])
    a = result.summary()["attacks"]
    assert a["lira-online"]["auc"] > 0.9
    assert a["lira-online"]["tpr_at_fpr"]["0.01"] > 5 * max(a["loss"]["tpr_at_fpr"]["0.01"], 0.01)
    assert a["rmia-online"]["auc"] > a["loss"]["auc"]


def test_existing_model_with_offline_references_trained_locally():
    """A black-box target: half of its non-members become the attacker's population data,
    on which offline references of a recipe train; no reference sees an audited record."""
    from miaudit import audit
    from miaudit.data import load_dataset
    from miaudit.errors import ConfigError
    from miaudit.training import make_recipe, train

    ds = load_dataset("digits")
    members = np.arange(ds.n_records) % 2 == 0
    target = train(make_recipe("mlp", {"epochs": 10}), ds.X[members], ds.y[members],
                   n_classes=ds.n_classes, seed=1)
    result = audit(data=ds, model=target.module, members=members, references=2,
                   reference_mode="offline", model_params={"epochs": 10}, seed=0)
    s = result.summary()
    assert s["target"]["references"] == 2 and s["target"]["reference_mode"] == "offline"
    assert {"lira-offline", "rmia-offline"} <= set(s["attacks"])
    assert "lira-online" not in s["attacks"]
    n_pop = s["data"]["n_population_records"]
    assert n_pop == int((~members).sum()) // 2
    assert s["data"]["n_records_in_game"] == ds.n_records - n_pop
    assert s["attacks"]["rmia-offline"]["auc"] > 0.5
    sig = result.signals
    assert not sig["membership"][1:].any()  # references never trained on an audited record
    with pytest.raises(ConfigError, match="offline"):
        audit(data=ds, model=target.module, members=members, references=2)
    with pytest.raises(ConfigError, match="lira-offline"):
        audit(data=ds, model=target.module, members=members, references=2,
              reference_mode="offline", attacks=["lira-online"])
