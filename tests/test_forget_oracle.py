"""The forgetting check against the truth: a model retrained without F (the oracle),
PrivLeak, U-LiRA and the unlearning recipes."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import typer
from scipy import stats
from scipy.special import log_softmax, softmax
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from miaudit.cli import governance as gov_cli
from miaudit.data import load_dataset
from miaudit.errors import ConfigError, DataError, OutputError
from miaudit.governance.forget import (
    INDISTINGUISHABLE,
    LESS_MEMBER_LIKE,
    LESS_MEMBER_LIKE_THAN_RETRAINED,
    MATCHES_RETRAINED,
    MORE_MEMBER_LIKE_THAN_RETRAINED,
    STILL_MEMBERS,
    TOLD_APART_BY_ULIRA,
    retrained_verdict,
    verify_forget,
)
from miaudit.governance.ulira import _p_values, ulira_figures, ulira_scores
from miaudit.metrics.multiple_testing import benjamini_hochberg
from miaudit.metrics.roc import auc_delong, compare_aucs, paired_auc_covariance

runner = CliRunner()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _split(ds, seed=0, n_forget=150, n_fresh=150):
    order = np.random.default_rng(seed).permutation(ds.n_records)
    return order[:n_forget], order[n_forget:n_forget + n_fresh]


def _logits_with_phi(phi, y, n_classes):
    """Logits whose logit-scaled confidence on label ``y`` is exactly ``phi``:
    ``z_y = phi + log(C - 1)``, the other classes 0."""
    z = np.zeros((len(phi), n_classes))
    z[np.arange(len(phi)), y] = phi + np.log(n_classes - 1)
    return z


def _quiet(**kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return verify_forget(**kw)


# ------------------------------------------------------------ the paired DeLong comparison


def _brute_force_cov(a, b, y):
    """DeLong's covariance from the O(m n) kernel psi(x, z) = 1[x > z] + 1[x = z] / 2."""
    comps = []
    for s in (a, b):
        psi = (s[y][:, None] > s[~y][None, :]) + 0.5 * (s[y][:, None] == s[~y][None, :])
        comps.append((psi.mean(axis=1), psi.mean(axis=0)))
    v10 = np.stack([c[0] for c in comps])
    v01 = np.stack([c[1] for c in comps])
    return np.cov(v10) / y.sum() + np.cov(v01) / (~y).sum()


def test_paired_covariance_matches_brute_force_sklearn_and_delong():
    rng = np.random.default_rng(3)
    y = np.arange(90) < 40
    a = np.round(rng.normal(size=90) + 0.6 * y, 1)  # rounded: ties within and across
    b = np.round(0.7 * a + rng.normal(size=90) * 0.5, 1)
    r = paired_auc_covariance(a, b, y)
    assert r.auc_new == pytest.approx(roc_auc_score(y, a))
    assert r.auc_retrained == pytest.approx(roc_auc_score(y, b))
    np.testing.assert_allclose(r.cov, _brute_force_cov(a, b, y), rtol=1e-12)
    assert r.cov[0, 0] == pytest.approx(auc_delong(a, y)[1])
    assert r.cov[1, 1] == pytest.approx(auc_delong(b, y)[1])
    assert r.cov[0, 1] > 0  # correlated scores: the paired variance is smaller


def test_difference_variance_agrees_with_a_paired_bootstrap():
    rng = np.random.default_rng(4)
    y = np.arange(400) < 200
    z = rng.normal(size=400)
    a = z + 0.5 * rng.normal(size=400) + 0.4 * y
    b = z + 0.5 * rng.normal(size=400)
    e = compare_aucs(a, b, y, alpha=0.05)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    diffs = []
    for _ in range(400):  # records resampled within each side, both models together
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        diffs.append(roc_auc_score(y[idx], a[idx]) - roc_auc_score(y[idx], b[idx]))
    se = (e["difference_ci"][1] - e["difference_ci"][0]) / (2 * 1.959964)
    assert se == pytest.approx(np.std(diffs), rel=0.15)
    assert e["difference"] == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    assert e["privleak"] == pytest.approx(e["difference"] / e["auc_retrained"])


def _paired_scores(rng, m, n, mu_new, mu_ret, rho):
    """Scores of two models on the same m members and n non-members: unit variance,
    correlation ``rho`` between the models per record, members shifted by ``mu``; the AUCs
    are ``Phi(mu / sqrt(2))``."""
    y = np.arange(m + n) < m
    z = rng.normal(size=m + n)
    a = np.sqrt(rho) * z + np.sqrt(1 - rho) * rng.normal(size=m + n) + mu_new * y
    b = np.sqrt(rho) * z + np.sqrt(1 - rho) * rng.normal(size=m + n) + mu_ret * y
    return a, b, y


@pytest.mark.parametrize("mu_new, mu_ret, rho", [(0.0, 0.0, 0.8), (0.0, 0.0, 0.0),
                                                 (0.8, 0.3, 0.6), (0.2, 0.9, 0.3)])
def test_difference_and_privleak_intervals_cover_the_truth(mu_new, mu_ret, rho):
    """Coverage by simulation, 600 runs of 150 + 150 records at nominal 95%."""
    rng = np.random.default_rng(5)
    auc_a, auc_b = stats.norm.cdf(mu_new / np.sqrt(2)), stats.norm.cdf(mu_ret / np.sqrt(2))
    hit_d = hit_r = 0
    runs = 600
    for _ in range(runs):
        e = compare_aucs(*_paired_scores(rng, 150, 150, mu_new, mu_ret, rho), alpha=0.05)
        hit_d += e["difference_ci"][0] <= auc_a - auc_b <= e["difference_ci"][1]
        hit_r += e["privleak_ci"][0] <= auc_a / auc_b - 1 <= e["privleak_ci"][1]
    assert 0.93 <= hit_d / runs <= 0.975
    assert 0.93 <= hit_r / runs <= 0.975


def test_verdict_logic_is_two_sided():
    up = {"difference": 0.1, "difference_ci": (0.05, 0.15)}
    down = {"difference": -0.2, "difference_ci": (-0.3, -0.1)}
    flat = {"difference": 0.01, "difference_ci": (-0.04, 0.06)}
    assert retrained_verdict({"loss": up, "mentr": flat}) == (MORE_MEMBER_LIKE_THAN_RETRAINED,
                                                              "loss")
    assert retrained_verdict({"loss": flat, "mentr": down}) == (
        LESS_MEMBER_LIKE_THAN_RETRAINED, "mentr")
    assert retrained_verdict({"loss": flat})[0] == MATCHES_RETRAINED
    assert retrained_verdict({"loss": flat}, ulira_detected=True)[0] == TOLD_APART_BY_ULIRA
    # under-unlearning outranks over-unlearning when attacks disagree
    assert retrained_verdict({"loss": down, "mentr": up})[0] == MORE_MEMBER_LIKE_THAN_RETRAINED


def _synthetic_outputs(rng, ds, spread=2.0, noise=0.7):
    """Two models' logits on every record: a shared part per record (how hard it is) and
    a part per model; no record was trained on by either, so F and fresh are alike."""
    base = spread * rng.normal(size=(ds.n_records, ds.n_classes))
    base[np.arange(ds.n_records), ds.y] += 2.0
    return [{"ids": ds.ids, "logits": base + noise * rng.normal(size=base.shape)}
            for _ in range(2)]


def test_exact_retraining_matches_the_retrained_model_in_95_percent_of_null_runs(digits):
    """The null: the model after forgetting and the retrained model are drawn alike (a
    retrain with another seed). 250 runs through verify_forget: the verdict against the
    retrained model must be 'matches' in >= 95% of them."""
    rng = np.random.default_rng(6)
    runs, matches, fresh_ok = 250, 0, 0
    for r in range(runs):
        forget, fresh = _split(digits, seed=r)
        new, ret = _synthetic_outputs(rng, digits)
        res = _quiet(data=digits, forget=digits.ids[forget], fresh=digits.ids[fresh],
                     model=new, retrained=ret)
        matches += res.retrained.verdict == MATCHES_RETRAINED
        fresh_ok += res.verdict == INDISTINGUISHABLE
    assert matches / runs >= 0.95
    assert fresh_ok / runs >= 0.95


def test_under_and_over_unlearning_are_both_caught(digits):
    """The original model (F scored as members) is 'more member-like' than the retrained
    one; an unlearning that leaves F less confident than unseen records (gradient ascent
    that overshoots) is 'less member-like', against fresh records and the retrained model."""
    rng = np.random.default_rng(7)
    forget, fresh = _split(digits)
    new, ret = _synthetic_outputs(rng, digits)
    in_f = np.isin(np.arange(digits.n_records), forget)
    orig = {"ids": digits.ids, "logits": new["logits"].copy()}
    orig["logits"][in_f, digits.y[in_f]] += 2.0  # memorised: higher confidence on F
    over = {"ids": digits.ids, "logits": new["logits"].copy()}
    over["logits"][in_f, digits.y[in_f]] -= 1.5  # pushed away: lower confidence on F
    common = {"data": digits, "forget": digits.ids[forget], "fresh": digits.ids[fresh],
              "retrained": ret}
    r = _quiet(model=orig, **common)
    assert r.verdict == STILL_MEMBERS
    assert r.retrained.verdict == MORE_MEMBER_LIKE_THAN_RETRAINED and not r.retrained.matches
    e = r.retrained.attacks[r.retrained.strongest_attack]
    assert e["difference_ci"][0] > 0 and e["privleak"] > 0.2
    r = _quiet(model=over, **common)
    assert r.verdict == LESS_MEMBER_LIKE
    assert r.retrained.verdict == LESS_MEMBER_LIKE_THAN_RETRAINED
    e = r.retrained.attacks[r.retrained.strongest_attack]
    assert e["difference_ci"][1] < 0 and e["privleak"] < -0.1
    assert "look less like members than on the model retrained" in r.headline()
    json.dumps(r.to_dict())


def test_the_retrained_model_catches_leaks_the_fresh_game_misses(digits):
    """F a chosen group (one class): even a retrained model sets F apart from fresh
    records of all classes, so the fresh game cannot judge; the retrained model can."""
    rng = np.random.default_rng(8)
    cls = np.flatnonzero(digits.y == 3)[:120]
    others = np.setdiff1d(np.arange(digits.n_records), cls)
    fresh = rng.choice(others, 150, replace=False)
    new, ret = _synthetic_outputs(rng, digits)
    for out in (new, ret):  # class 3 is easy for both models: F "looks like members"
        out["logits"][cls, 3] += 3.0
    r = _quiet(data=digits, forget=digits.ids[cls], fresh=digits.ids[fresh], model=new,
               retrained=ret)
    assert r.verdict == STILL_MEMBERS
    assert r.retrained.verdict == MATCHES_RETRAINED


def test_fitted_models_work_as_the_retrained_model(digits):
    """Model objects as well as outputs: random forests (leaves of one record memorise),
    retrained without F with two seeds, match; the original does not."""
    from sklearn.ensemble import RandomForestClassifier

    order = np.random.default_rng(0).permutation(digits.n_records)
    train, fresh = order[:800], order[800:950]
    forget, keep = train[:150], train[150:]

    def forest(rows, seed):
        return RandomForestClassifier(n_estimators=30, random_state=seed).fit(
            digits.X[rows], digits.y[rows])

    common = {"data": digits, "forget": digits.ids[forget], "fresh": digits.ids[fresh],
              "retrained": forest(keep, 1)}
    r = _quiet(model=forest(keep, 2), **common)
    assert r.retrained.verdict == MATCHES_RETRAINED and r.verdict == INDISTINGUISHABLE
    r = _quiet(model=forest(train, 0), **common)
    assert r.retrained.verdict == MORE_MEMBER_LIKE_THAN_RETRAINED
    assert r.retrained.retrained.accuracy_forget < r.new.accuracy_forget == 1.0


# ---------------------------------------------------------------------------------- U-LiRA


def test_ulira_ratio_is_the_gaussian_log_likelihood_ratio():
    rng = np.random.default_rng(9)
    u, r = rng.normal(1, 1.3, (70, 5)), rng.normal(0, 0.8, (70, 5))
    mask = np.ones((70, 5), bool)
    phi = np.array([-2.0, 0.0, 0.5, 1.0, 3.0])
    llr, _ = ulira_scores(phi, u, mask, r, mask)  # 70 >= 64 shadows: per record
    want = (stats.norm.logpdf(phi, u.mean(0), u.std(0, ddof=1))
            - stats.norm.logpdf(phi, r.mean(0), r.std(0, ddof=1)))
    np.testing.assert_allclose(llr, want, rtol=1e-10)
    llr, _ = ulira_scores(phi, u[:8], mask[:8], r[:8], mask[:8])  # pooled
    pooled = [np.sqrt(((x - x.mean(0)) ** 2).sum() / (8 * 5 - 5)) for x in (u[:8], r[:8])]
    want = (stats.norm.logpdf(phi, u[:8].mean(0), pooled[0])
            - stats.norm.logpdf(phi, r[:8].mean(0), pooled[1]))
    np.testing.assert_allclose(llr, want, rtol=1e-10)


@pytest.mark.parametrize("s_u", [1.0, 1.6, 0.6])
def test_ulira_p_value_is_the_region_probability(s_u):
    """The closed form against Monte Carlo: P(LLR(x) >= LLR(phi)), x ~ N(m, scale^2)."""
    rng = np.random.default_rng(10)
    mu_u, mu_r, s_r, scale = 1.0, 0.0, 1.0, 1.1
    phi = np.array([-2.5, -1.0, 0.2, 0.9, 2.0, 4.0])
    one = np.ones_like(phi)
    p = _p_values(phi, mu_u * one, s_u * one, mu_r * one, s_r * one, scale * one,
                  stats.norm())
    x = mu_r + scale * rng.normal(size=400_000)

    def llr(v):
        return stats.norm.logpdf(v, mu_u, s_u) - stats.norm.logpdf(v, mu_r, s_r)

    mc = np.array([(llr(x) >= llr(f)).mean() for f in phi])
    np.testing.assert_allclose(p, mc, atol=0.004)


def _ulira_null(rng, n, k, delta=0.5, s_u=1.0):
    """n records, k shadows a side; the audited phi drawn as never trained on."""
    mu_r = rng.normal(0, 2, n)
    mu_u = mu_r + rng.normal(delta, 0.5, n)
    shadows = (mu_u + s_u * rng.normal(size=(k, n)), np.ones((k, n), bool),
               mu_r + rng.normal(size=(k, n)), np.ones((k, n), bool))
    return mu_u, mu_r, shadows


@pytest.mark.parametrize("k, s_u, per_example", [(8, 1.0, None), (4, 1.5, None),
                                                 (8, 0.7, None), (64, 1.3, None)])
def test_ulira_p_values_are_uniform_under_the_null(k, s_u, per_example):
    """Records never trained on: each p-value falls below 1%, 5% and 20% at those rates;
    Benjamini-Hochberg flags nothing in >= 95% of runs."""
    rng = np.random.default_rng(11)
    runs, n = 300, 150
    ps, any_flag = [], 0
    for _ in range(runs):
        _, mu_r, sh = _ulira_null(rng, n, k, s_u=s_u)
        _, p = ulira_scores(mu_r + rng.normal(size=n), *sh, per_example=per_example)
        ps.append(p)
        any_flag += benjamini_hochberg(p, 0.05).any()
    ps = np.concatenate(ps)
    for level in (0.01, 0.05, 0.2):
        se = np.sqrt(level * (1 - level) / len(ps))
        assert abs((ps < level).mean() - level) < 4 * se + 0.002
    assert any_flag / runs <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / runs)


def test_ulira_balanced_game_matches_closed_forms():
    """With many shadows (parameters known) and equal variances, the rule 'ratio > 0' is
    right with probability Phi(delta / 2), the ratio's AUC is Phi(delta / sqrt(2)) and the
    per-record test at 5% has power Phi(delta - 1.645)."""
    rng = np.random.default_rng(12)
    n, k, delta = 3000, 200, 1.0
    mu_r = rng.normal(0, 2, n)
    mu_u = mu_r + delta
    shadows = (mu_u + rng.normal(size=(k, n)), np.ones((k, n), bool),
               mu_r + rng.normal(size=(k, n)), np.ones((k, n), bool))
    u = ulira_figures(np.arange(n), mu_u + rng.normal(size=n), mu_r + rng.normal(size=n),
                      shadows, alpha=0.05, per_example=False)
    assert u.accuracy == pytest.approx(stats.norm.cdf(delta / 2), abs=0.015)
    assert u.auc == pytest.approx(stats.norm.cdf(delta / np.sqrt(2)), abs=0.015)
    assert u.accuracy_ci[0] < stats.norm.cdf(delta / 2) < u.accuracy_ci[1]
    # one-sided test of "never trained on" at 5%: power Phi(delta - z_0.95)
    power = stats.norm.cdf(delta - stats.norm.ppf(0.95))
    assert (u.p_values < 0.05).mean() == pytest.approx(power, abs=0.025)
    assert u.detected and u.flagged.any()


def test_ulira_null_game_detects_nothing_in_95_percent_of_runs():
    """Exact unlearning: the model after forgetting and the retrained model both drawn as
    never trained on; the AUC and accuracy intervals of the balanced game hold 0.5."""
    rng = np.random.default_rng(13)
    runs, detected, acc_in = 300, 0, 0
    for _ in range(runs):
        _, mu_r, sh = _ulira_null(rng, 150, 8)
        u = ulira_figures(np.arange(150), mu_r + rng.normal(size=150),
                          mu_r + rng.normal(size=150), sh, alpha=0.05)
        detected += u.detected
        acc_in += u.accuracy_ci[0] <= 0.5 <= u.accuracy_ci[1]
    assert detected / runs <= 0.05
    assert acc_in / runs >= 0.93


def _ulira_setup(ds, rng, k=8, delta=1.5):
    """Shadow stacks (logits) with per-record Gaussians, and phi for the models."""
    n = ds.n_records
    mu_r = rng.normal(1, 1.5, n)
    mu_u = mu_r + delta
    stack = {"ids": ds.ids,
             "unlearned_logits": np.stack([_logits_with_phi(mu_u + rng.normal(size=n), ds.y,
                                                            ds.n_classes) for _ in range(k)]),
             "retrained_logits": np.stack([_logits_with_phi(mu_r + rng.normal(size=n), ds.y,
                                                            ds.n_classes) for _ in range(k)])}

    def model(mu):
        return {"ids": ds.ids,
                "logits": _logits_with_phi(mu + rng.normal(size=n), ds.y, ds.n_classes)}

    return stack, model, mu_u, mu_r


def test_ulira_through_verify_forget(digits, tmp_path):
    """An unlearned model whose outputs on F follow the unlearned shadows: the AUCs can
    match (both within noise of the fresh game) while U-LiRA tells the models apart; a
    retrained model passes. The shadows travel as an .npz."""
    rng = np.random.default_rng(14)
    forget, fresh = _split(digits)
    stack, model, mu_u, mu_r = _ulira_setup(digits, rng, delta=0.6)
    path = tmp_path / "shadows.npz"
    np.savez(path, **stack)
    common = {"data": digits, "forget": digits.ids[forget], "fresh": digits.ids[fresh],
              "shadows": path}
    mu_traced = mu_r.copy()
    mu_traced[forget] = mu_u[forget]
    r = _quiet(model=model(mu_traced), retrained=model(mu_r), **common)
    u = r.retrained.ulira
    assert u.detected and u.auc > 0.6 and u.accuracy > 0.55
    assert r.retrained.verdict in (TOLD_APART_BY_ULIRA, MORE_MEMBER_LIKE_THAN_RETRAINED)
    assert r.retrained.interval_level == pytest.approx(1 - 0.05 / 3)  # 2 attacks + U-LiRA
    assert list(u.record_ids) == [str(i) for i in digits.ids[forget]]
    d = r.to_dict()["retrained"]["ulira"]
    assert len(d["records"]) == 150 and d["n_flagged"] == int(u.flagged.sum())
    json.dumps(r.to_dict())
    plain, oracle = model(mu_r), model(mu_r)
    r = _quiet(model=plain, retrained=oracle, **common)
    assert not r.retrained.ulira.detected
    # masks: a shadow that never saw a record counts on the retrained side only
    masked = dict(stack, unlearned_mask=np.ones((8, digits.n_records), bool))
    masked["unlearned_mask"][0, forget[0]] = False
    r2 = _quiet(model=plain, retrained=oracle, **{**common, "shadows": masked})
    assert r2.retrained.ulira.llr_new[0] != r.retrained.ulira.llr_new[0]
    # probabilities instead of logits: the same phi, the same figures
    probs = {k: v for k, v in stack.items() if not k.endswith("logits")}
    for side in ("unlearned", "retrained"):
        probs[f"{side}_probs"] = softmax(stack[f"{side}_logits"], axis=2)
    r3 = _quiet(model=plain, retrained=oracle, **{**common, "shadows": probs})
    np.testing.assert_allclose(r3.retrained.ulira.llr_new, r.retrained.ulira.llr_new,
                               rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- bad input


def test_bad_retrained_and_shadow_inputs(digits, tmp_path):
    rng = np.random.default_rng(15)
    forget, fresh = _split(digits)
    new, ret = _synthetic_outputs(rng, digits)
    common = {"data": digits, "forget": digits.ids[forget], "fresh": digits.ids[fresh],
              "model": new}
    part = tmp_path / "retrained.npz"
    keep = np.setdiff1d(np.arange(digits.n_records), fresh[:3])
    np.savez(part, ids=digits.ids[keep], logits=ret["logits"][keep])
    with pytest.raises(OutputError, match=r"the retrained model \(retrained.npz\) has no "
                       r"outputs for 3 of the records checked"):
        _quiet(retrained=part, **common)
    with pytest.raises(ConfigError, match="needs 'retrained'"):
        _quiet(shadows={"ids": digits.ids}, **common)
    with pytest.raises(ConfigError, match=r"retrained 'mlp'.*not a recipe name"):
        _quiet(retrained="mlp", **common)
    stack, _, _, _ = _ulira_setup(digits, rng, k=3)
    bad = {k: v for k, v in stack.items() if k != "retrained_logits"}
    with pytest.raises(DataError, match="exactly one of 'retrained_logits' or "
                       "'retrained_probs'"):
        _quiet(retrained=ret, shadows=bad, **common)
    rows = np.setdiff1d(np.arange(digits.n_records), forget[:1])
    short = dict(stack, ids=digits.ids[rows], unlearned_logits=stack["unlearned_logits"][:, rows],
                 retrained_logits=stack["retrained_logits"][:, rows])
    with pytest.raises(OutputError, match="has no shadow outputs for 1 of the records"):
        _quiet(retrained=ret, shadows=short, **common)
    mask = np.ones((3, digits.n_records), bool)
    mask[:, forget[4]] = False
    with pytest.raises(DataError, match=r"1 record\(s\) of F have no unlearned shadow"):
        _quiet(retrained=ret, shadows=dict(stack, unlearned_mask=mask), **common)
    with pytest.raises(DataError, match="'retrained_mask' must be a bool array"):
        _quiet(retrained=ret, shadows=dict(stack, retrained_mask=mask.astype(int)), **common)
    with pytest.raises(DataError, match=r"must have shape \(models, 1797, classes\)"):
        _quiet(retrained=ret, shadows=dict(stack, retrained_logits=ret["logits"]), **common)
    flat = dict(stack, retrained_logits=np.zeros((3, digits.n_records, 4)))
    with pytest.raises(OutputError, match="4 columns but the data has 10 classes"):
        _quiet(retrained=ret, shadows=flat, **common)
    with pytest.raises(ConfigError, match=r"Shadow models must be an \.npz"):
        _quiet(retrained=ret, shadows=str(tmp_path / "shadows.txt"), **common)
    with pytest.raises(DataError, match="Outputs file not found"):
        _quiet(retrained=ret, shadows=tmp_path / "none.npz", **common)


# ----------------------------------------------------------------------------------- CLI


def _ids(path, ids):
    path.write_text("\n".join(str(i) for i in ids) + "\n")
    return path


def test_cli_with_retrained_and_shadows(digits, tmp_path):
    app = typer.Typer()
    gov_cli.register(app)
    rng = np.random.default_rng(16)
    forget, fresh = _split(digits)
    stack, model, _, mu_r = _ulira_setup(digits, rng, delta=1.0)
    files = {}
    mu_orig = mu_r.copy()
    mu_orig[forget] += 2.0
    for name, mu in (("new", mu_r), ("ret", mu_r), ("orig", mu_orig)):
        files[name] = tmp_path / f"{name}.npz"
        np.savez(files[name], **model(mu))
    np.savez(tmp_path / "shadows.npz", **stack)
    base = ["verify-forget", "--data", "digits", "--forget",
            str(_ids(tmp_path / "f.txt", digits.ids[forget])), "--fresh",
            str(_ids(tmp_path / "n.txt", digits.ids[fresh]))]
    res = runner.invoke(app, [*base, "--outputs", str(files["new"]), "--retrained",
                              str(files["ret"]), "--shadows", str(tmp_path / "shadows.npz"),
                              "--strict"])
    assert res.exit_code == 0, res.output
    assert "AUC retrained" in res.stdout and "PrivLeak" in res.stdout
    assert "U-LiRA (8 unlearned / 8 retrained shadows, pooled variance" in res.stdout
    assert "look as they do on a model retrained without them" in res.stdout
    res = runner.invoke(app, [*base, "--outputs", str(files["orig"]), "--retrained",
                              str(files["ret"]), "--strict", "--format", "json"])
    assert res.exit_code == 1
    d = json.loads(res.stdout)
    assert d["verdict"] == STILL_MEMBERS
    assert d["retrained"]["verdict"] == MORE_MEMBER_LIKE_THAN_RETRAINED
    assert d["retrained"]["attacks"]["loss"]["privleak"] > 0 and d["retrained"]["ulira"] is None
    res = runner.invoke(app, [*base, "--outputs", str(files["new"]), "--shadows",
                              str(tmp_path / "shadows.npz")])
    assert res.exit_code == 2 and "needs 'retrained'" in res.stderr
    res = runner.invoke(app, [*base, "--outputs", str(files["new"]), "--retrained",
                              str(tmp_path / "missing.npz")])
    assert res.exit_code == 2 and "Outputs file not found" in res.stderr
    # without --retrained: the old behaviour, and the JSON says there was no comparison
    res = runner.invoke(app, [*base, "--outputs", str(files["new"]), "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["retrained"] is None
    res = runner.invoke(app, ["verify-forget", "--help"])
    assert "--retrained" in res.stdout and "--shadows" in res.stdout


# ------------------------------------------------------------------- unlearning recipes


@pytest.fixture(scope="module")
def tiny_models(digits):
    """An MLP on 400 digits (F = 100 of them), a retrained one, and an exact retrain."""
    pytest.importorskip("torch")
    from miaudit.governance.unlearning import model_outputs, unlearn
    from miaudit.training.recipes import make_recipe
    from miaudit.training.single import train

    order = np.random.default_rng(0).permutation(digits.n_records)
    members, fresh = order[:400], order[400:800]
    forget, retain = members[:100], members[100:]
    recipe = make_recipe("mlp", {"hidden": (64,), "epochs": 40})
    original = train(recipe, digits.X[members], digits.y[members],
                     n_classes=digits.n_classes, seed=0)
    return {"original": original, "forget": forget, "retain": retain, "fresh": fresh,
            "recipe": recipe, "outputs": model_outputs(original, digits),
            "oracle": unlearn("retrain", original=original, data=digits, retain=retain,
                              forget=forget, seed=1)}


def test_recipes_exact_retraining_matches_and_the_original_does_not(digits, tiny_models):
    from miaudit.governance.unlearning import unlearn

    t = tiny_models
    common = {"data": digits, "forget": digits.ids[t["forget"]],
              "fresh": digits.ids[t["fresh"]], "retrained": t["oracle"]}
    exact = unlearn("retrain", original=t["original"], data=digits, retain=t["retain"],
                    forget=t["forget"], seed=2)
    assert _quiet(model=exact, **common).retrained.verdict == MATCHES_RETRAINED
    r = _quiet(model=t["outputs"], **common)
    assert r.retrained.verdict == MORE_MEMBER_LIKE_THAN_RETRAINED
    # the recipes leave the original alone and are deterministic for a seed
    tuned = [unlearn("finetune", original=t["original"], data=digits, retain=t["retain"],
                     forget=t["forget"], epochs=2) for _ in range(2)]
    np.testing.assert_array_equal(tuned[0]["logits"], tuned[1]["logits"])
    from miaudit.governance.unlearning import model_outputs
    np.testing.assert_array_equal(model_outputs(t["original"], digits)["logits"],
                                  t["outputs"]["logits"])
    up = unlearn("gradient-ascent", original=t["original"], data=digits, retain=t["retain"],
                 forget=t["forget"], steps=3, lr=0.5)
    f = t["forget"]
    loss = [-log_softmax(o["logits"][f], axis=1)[np.arange(len(f)), digits.y[f]].mean()
            for o in (t["outputs"], up)]
    assert loss[1] > loss[0]  # ascent raised the loss of F


def test_recipe_errors(digits, tiny_models):
    from miaudit.governance.unlearning import shadow_outputs, unlearn

    t = tiny_models
    kw = {"original": t["original"], "data": digits, "retain": t["retain"],
          "forget": t["forget"]}
    with pytest.raises(ConfigError, match="Did you mean 'finetune'"):
        unlearn("fine-tune", **kw)
    with pytest.raises(ConfigError, match="share records"):
        unlearn("retrain", **{**kw, "retain": [*t["retain"][:10], t["forget"][0]]})
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        unlearn("gradient-ascent", steps=0, **kw)
    with pytest.raises(ConfigError, match="n_shadows must be >= 1"):
        shadow_outputs("retrain", recipe=t["recipe"], data=digits, retain=t["retain"],
                       forget=t["forget"], n_shadows=0)


def test_shadow_outputs_feed_ulira(digits, tiny_models):
    """Shadows from the recipes (batched training) in the stacked format; U-LiRA on an
    exact retrain detects nothing."""
    from miaudit.governance.unlearning import shadow_outputs, unlearn

    t = tiny_models
    sh = shadow_outputs("retrain", recipe=t["recipe"], data=digits, retain=t["retain"],
                        forget=t["forget"], n_shadows=4)
    assert sh["unlearned_logits"].shape == sh["retrained_logits"].shape == (
        4, digits.n_records, digits.n_classes)
    exact = unlearn("retrain", original=t["original"], data=digits, retain=t["retain"],
                    forget=t["forget"], seed=2)
    r = _quiet(data=digits, forget=digits.ids[t["forget"]], fresh=digits.ids[t["fresh"]],
               model=exact, retrained=t["oracle"], shadows=sh)
    assert not r.retrained.ulira.detected
    assert r.retrained.verdict == MATCHES_RETRAINED


@pytest.mark.shared_data
def test_location30_recipes_end_to_end(shared_file):
    """The MLP on 1,000 Location30 records (F = 100): exact retraining matches the
    retrained model; gradient ascent that overshoots leaves F less member-like than unseen
    records, which the two-sided check catches against fresh records and the oracle."""
    pytest.importorskip("torch")
    from miaudit.governance.unlearning import model_outputs, unlearn
    from miaudit.training.recipes import make_recipe
    from miaudit.training.single import train

    ds = load_dataset(shared_file("location30.npz"))
    order = np.random.default_rng(0).permutation(ds.n_records)
    members, fresh = order[:1000], order[1000:1600]
    forget, retain = members[:100], members[100:]
    original = train(make_recipe("mlp", {"epochs": 20}), ds.X[members], ds.y[members],
                     n_classes=ds.n_classes, seed=0)
    kw = {"original": original, "data": ds, "retain": retain, "forget": forget}
    common = {"data": ds, "forget": ds.ids[forget], "fresh": ds.ids[fresh],
              "retrained": unlearn("retrain", seed=1, **kw)}
    r = _quiet(model=unlearn("retrain", seed=2, **kw), **common)
    assert r.retrained.verdict == MATCHES_RETRAINED
    r = _quiet(model=model_outputs(original, ds), **common)
    assert r.retrained.verdict == MORE_MEMBER_LIKE_THAN_RETRAINED
    assert r.retrained.attacks["loss"]["privleak"] > 0.3
    r = _quiet(model=unlearn("gradient-ascent", steps=12, lr=1.0, **kw), **common)
    assert r.verdict == LESS_MEMBER_LIKE
    assert r.retrained.verdict == LESS_MEMBER_LIKE_THAN_RETRAINED
    assert r.retrained.attacks[r.retrained.strongest_attack]["privleak"] < 0
