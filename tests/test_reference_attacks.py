"""Reference-model attacks against direct, slow computations, and reference games end to end."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

import miaudit
from miaudit.attacks import ATTACKS, AttackInput, References
from miaudit.attacks.reference import rmia_scores, tune_offline_a
from miaudit.errors import ConfigError
from miaudit.models import check_outputs
from miaudit.signals import observe


def _game(n=60, c=3, k=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    membership = rng.random((k + 1, n)) < 0.5
    membership[1:, 0] = [True, False] * (k // 2)  # every record has IN and OUT refs
    membership[1:, 1] = [False, True] * (k // 2)
    for i in range(2, n):  # make sure each record has both sides among references
        membership[1, i], membership[2, i] = True, False
    difficulty = rng.normal(0, 1, n)
    logits = rng.normal(0, 1, (k + 1, n, c))
    logits[:, np.arange(n), y] += 2 * membership + difficulty + rng.normal(0, 0.3, (k + 1, n))
    return logits, membership, y


def _inputs(logits, membership, y, exposure="logits"):
    obs = observe(check_outputs(logits[0], "logits"), y, exposure)
    refs = References(logits[1:], membership[1:], y)
    return AttackInput(obs, references=refs, population=~membership[0])


def _phi(z, label):
    p = np.exp(z - z.max())
    p /= p.sum()
    return np.log(p[label]) - np.log(1 - p[label])


@pytest.mark.parametrize("variance", ["per-example", "global"])
def test_lira_matches_direct_computation(variance):
    logits, membership, y = _game()
    n = len(y)
    scores_on = ATTACKS["lira-online"].score(_inputs(logits, membership, y), variance=variance)
    scores_off = ATTACKS["lira-offline"].score(_inputs(logits, membership, y), variance=variance)
    phis = np.array([[_phi(logits[m, i], y[i]) for i in range(n)] for m in range(len(logits))])
    ins = [phis[1:, i][membership[1:, i]] for i in range(n)]
    outs = [phis[1:, i][~membership[1:, i]] for i in range(n)]
    if variance == "global":
        def pooled(groups):
            ss = sum(((g - g.mean()) ** 2).sum() for g in groups)
            return np.sqrt(ss / sum(len(g) - 1 for g in groups))
        s_in = [pooled(ins)] * n
        s_out = [pooled(outs)] * n
    else:  # per record, or the pooled value where a record has a single reference
        def pooled(groups):
            ss = sum(((g - g.mean()) ** 2).sum() for g in groups)
            return np.sqrt(ss / sum(len(g) - 1 for g in groups))
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


def test_rmia_pairwise_count_matches_the_n_by_z_definition():
    rng = np.random.default_rng(0)
    n = 300
    p_t = rng.random(n)
    p_m = rng.random(n) * 0.9 + 0.05
    population = rng.random(n) < 0.4
    for gamma in (1.0, 2.0):
        s = rmia_scores(p_t, p_m, population, gamma)
        r = p_t / p_m
        direct = (r[:, None] / r[None, population] >= gamma).mean(axis=1)  # N x Z, small
        # the fraction is the integer part; a tie-breaker smaller than one step follows r(x)
        z = population.sum()
        np.testing.assert_array_equal(np.floor(s * z + 1e-9), np.round(direct * z))
        order = np.argsort(s, kind="stable")
        assert np.all(np.diff(r[order]) >= 0)  # higher score never means lower ratio


def test_rmia_online_and_offline_formulas():
    logits, membership, y = _game(seed=3)
    inputs = _inputs(logits, membership, y)
    from scipy.special import softmax

    temp = 2.0
    p = np.stack([softmax(z / temp, axis=1)[np.arange(len(y)), y] for z in logits])
    m = membership[1:]
    mean_in = (p[1:] * m).sum(0) / m.sum(0)
    mean_out = (p[1:] * ~m).sum(0) / (~m).sum(0)
    pop = ~membership[0]
    on = ATTACKS["rmia-online"].score(inputs, temperature=temp)
    expected = rmia_scores(p[0], 0.5 * (mean_in + mean_out), pop, 1.0)
    np.testing.assert_allclose(on, expected)
    off = ATTACKS["rmia-offline"].score(inputs, temperature=temp, a=0.4)
    expected = rmia_scores(p[0], 0.7 * mean_out + 0.3, pop, 1.0)
    np.testing.assert_allclose(off, expected)
    assert 0.0 <= tune_offline_a(inputs.references, temp) <= 1.0


def test_attack_r_and_p_match_direct_counts():
    logits, membership, y = _game(seed=4)
    inputs = _inputs(logits, membership, y)
    loss = inputs.target.loss
    ref_loss = inputs.references.loss
    out = ~membership[1:]
    direct_r = [(ref_loss[out[:, i], i] >= loss[i]).mean() for i in range(len(y))]
    np.testing.assert_allclose(ATTACKS["attack-r"].score(inputs), direct_r)
    pop = loss[~membership[0]]
    direct_p = [(pop >= loss[i]).mean() for i in range(len(y))]
    np.testing.assert_allclose(ATTACKS["attack-p"].score(inputs), direct_p)


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
    assert (sig["membership"].sum(axis=1) == n // 2).all()
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
    assert sig["membership"][0].sum() == sig["membership"].shape[1] // 2
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
                                    "rmia-offline", "attack-r", "shokri"])
    for name, m in result.summary()["attacks"].items():
        assert abs(m["auc"] - 0.5) < 0.03, (name, m["auc"])
        assert m["tpr_at_fpr"]["0.01"] < 0.03, (name, m["tpr_at_fpr"]["0.01"])


def test_location30_lira_beats_loss_at_low_fpr(shared_file):
    path = shared_file("location30.npz")
    result = miaudit.audit(data=path, model="mlp", references=8,
                           attacks=["loss", "lira-online", "rmia-online"])
    a = result.summary()["attacks"]
    assert a["lira-online"]["auc"] > 0.9
    assert a["lira-online"]["tpr_at_fpr"]["0.01"] > 5 * max(a["loss"]["tpr_at_fpr"]["0.01"], 0.01)
    assert a["rmia-online"]["auc"] > a["loss"]["auc"]


def test_augmented_queries_average_over_variants():
    logits, membership, y = _game(seed=5)
    rng = np.random.default_rng(0)
    variants = logits[:, None] + rng.normal(0, 0.3, (logits.shape[0], 2, *logits.shape[1:]))
    plain = _inputs(logits, membership, y)
    obs_v = tuple(observe(check_outputs(variants[0, a], "logits"), y, "logits")
                  for a in range(2))
    refs_v = References(logits[1:], membership[1:], y, variant_logits=variants[1:])
    augmented = AttackInput(plain.target, references=refs_v, population=~membership[0],
                            target_variants=obs_v)
    per_query = [plain] + [
        AttackInput(obs_v[a], references=References(variants[1:, a], membership[1:], y),
                    population=~membership[0]) for a in range(2)]
    for name in ("lira-online", "lira-offline"):
        expected = np.mean([ATTACKS[name].score(q) for q in per_query], axis=0)
        np.testing.assert_allclose(ATTACKS[name].score(augmented), expected)
    # RMIA averages Pr(x | model) over the queries, then forms the ratio
    from scipy.special import softmax

    def p(z):
        return softmax(z / 2.0, axis=-1)[..., np.arange(len(y)), y]

    p_t = np.mean([p(logits[0]), p(variants[0, 0]), p(variants[0, 1])], axis=0)
    p_r = np.mean([p(logits[1:]), p(variants[1:, 0]), p(variants[1:, 1])], axis=0)
    m = membership[1:]
    marginal = 0.5 * ((p_r * m).sum(0) / m.sum(0) + (p_r * ~m).sum(0) / (~m).sum(0))
    np.testing.assert_allclose(ATTACKS["rmia-online"].score(augmented),
                               rmia_scores(p_t, marginal, ~membership[0], 1.0))


def test_existing_model_with_offline_references_trained_locally():
    """A black-box target: half of its non-members become the attacker's population data,
    on which offline references of a recipe train; no reference sees an audited record."""
    from miaudit import audit
    from miaudit.data import load_dataset
    from miaudit.errors import ConfigError
    from miaudit.models import make_recipe, train

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
