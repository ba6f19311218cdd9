"""White-box one-run audit: gradient canaries inserted into DP-SGD (Steinke, Nasr &
Jagielski 2023; Dirac canaries of Nasr et al. 2023).

What is checked: the canaries' draw; the exact decomposition of each canary's recorded
projections (model's own gradient + C x steps inserted + noise); the noise part's closed
form N(0, T (sigma C)^2) and the included-minus-excluded gap C T q; the "sum" score equals
the canary's share of the parameter change under plain SGD; perfect separation without
noise; null runs (nothing inserted: simulated and real) give 0 in >= 95% of runs; the
bound stays below the accountant's epsilon (exact simulation of the subsampled Gaussian
mechanism, and real runs); the audit function and the command line.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from miaudit.audits.white_box import (  # noqa: E402
    audit_one_run_white_box,
    canary_scores,
)
from miaudit.errors import ConfigError  # noqa: E402
from miaudit.metrics.one_run import (  # noqa: E402
    correct_guesses,
    one_run_audit,
    one_run_epsilons,
)
from miaudit.metrics.one_run_fdp import one_run_mu  # noqa: E402
from miaudit.training import build_module, make_recipe  # noqa: E402
from miaudit.training.dp_canaries import (  # noqa: E402
    MAX_RANDOM_ENTRIES,
    draw_gradient_canaries,
    train_with_gradient_canaries,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small models train faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _data(n: int = 64, d: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64)


def _recipe(**kw):
    params = {"hidden": "512", "epochs": 10, "batch_size": 16, **kw}
    return make_recipe("mlp", params)


def _train(recipe, *, m=100, seed=0, **kw):
    X, y = _data()
    return train_with_gradient_canaries(recipe, X, y, n_classes=2, canaries=m, seed=seed,
                                        **kw)


# ---------------------------------------------------------------- the canaries


def test_canaries_are_seeded_distinct_and_included_with_probability_half():
    a = draw_gradient_canaries(10_000, 2000, seed=3)
    b = draw_gradient_canaries(10_000, 2000, seed=3)
    assert np.array_equal(a.coordinates, b.coordinates)
    assert np.array_equal(a.included, b.included)
    assert len(np.unique(a.coordinates)) == 2000 and a.coordinates.max() < 10_000
    # Binomial(2000, 1/2): within 4 standard deviations
    assert abs(a.included.sum() - 1000) < 4 * math.sqrt(500)
    r = draw_gradient_canaries(300, 40, kind="random", seed=0)
    assert r.directions.shape == (40, 300)
    assert np.allclose(np.linalg.norm(r.directions, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(("args", "text"), [
    ((100, 101), "between 1 and"),
    ((100, 0), "between 1 and"),
    ((MAX_RANDOM_ENTRIES, 2), "MB"),
])
def test_bad_canary_counts_are_refused(args, text):
    kind = "random" if text == "MB" else "dirac"
    with pytest.raises(ConfigError, match=text):
        draw_gradient_canaries(*args, kind=kind)
    with pytest.raises(ConfigError, match="unknown"):
        draw_gradient_canaries(100, 10, kind="gaussian")


# ---------------------------------------------------------------- what is recorded


@pytest.mark.parametrize("kind", ["dirac", "random"])
def test_projections_decompose_exactly(kind):
    """sum_t y[t, i] = own gradient part + canary part + noise part (canary part = C *
    steps inserted for Dirac canaries), and a canary is inserted exactly when it is
    included and drawn."""
    run = _train(_recipe(dp_noise_multiplier=0.7, dp_max_grad_norm=0.5), m=60, kind=kind)
    tr, can = run.trace, run.canaries
    total = tr.projections.sum(axis=0)
    assert np.allclose(total, tr.data_part + tr.canary_part + tr.noise_part, atol=1e-4)
    assert np.array_equal(tr.n_inserted, np.where(can.included, tr.sampled, 0))
    inserted = tr.max_grad_norm * tr.n_inserted
    if kind == "dirac":  # orthogonal: exactly C per step inserted
        assert np.array_equal(tr.canary_part, inserted)
    else:  # plus overlaps C <u_i, u_j> ~ N(0, C^2 / P) with the other canaries inserted
        overlap = tr.canary_part - inserted
        assert np.abs(overlap).max() < 0.1 * tr.max_grad_norm * tr.n_inserted.sum() ** 0.5
    assert tr.projections.shape == (tr.steps, 60) and tr.steps == 40
    assert tr.sample_rate == 0.25 and tr.noise_multiplier == 0.7


def test_noise_part_and_gap_match_their_closed_form():
    """Dirac canaries: noise part ~ N(0, T (sigma C)^2) exactly (independent coordinates of
    Opacus' Gaussian noise); times drawn ~ Bin(T, q); included minus excluded scores,
    net of the model's own gradient, differ by C T q on average."""
    sigma, clip = 1.3, 2.0
    run = _train(_recipe(dp_noise_multiplier=sigma, dp_max_grad_norm=clip), m=2000)
    tr, inc = run.trace, run.canaries.included
    sd = sigma * clip * math.sqrt(tr.steps)
    assert stats.kstest(tr.noise_part / sd, "norm").pvalue > 0.001
    q, T = tr.sample_rate, tr.steps
    # times drawn: Binomial(T, q) for every canary (mean within 4 standard errors)
    assert abs(tr.sampled.mean() - T * q) < 4 * math.sqrt(T * q * (1 - q) / inc.size)
    net = tr.projections.sum(axis=0) - tr.data_part  # = C * inserted + noise
    assert stats.kstest(net[~inc] / sd, "norm").pvalue > 0.001
    gap = net[inc].mean() - net[~inc].mean()
    se = math.sqrt((clip**2 * T * q * (1 - q) + sd**2) / inc.sum() + sd**2 / (~inc).sum())
    assert abs(gap - clip * T * q) < 4 * se
    # and the scores themselves point the right way (higher = included)
    for score in ("sum", "llr"):
        s = canary_scores(tr.projections, score=score, sample_rate=q, noise_multiplier=sigma,
                          max_grad_norm=clip)
        auc = stats.mannwhitneyu(s[inc], s[~inc]).statistic / (inc.sum() * (~inc).sum())
        assert auc > 0.6, (score, auc)


def test_sum_score_is_the_parameter_change_under_plain_sgd(monkeypatch):
    """With SGD without momentum: sum_t y[t, i] = (theta_0 - theta_T)[coordinate] * B / lr."""
    import miaudit.training.dp_canaries as mod

    lr = 0.05
    monkeypatch.setattr(mod, "make_optimizer",
                        lambda recipe, params: torch.optim.SGD(params, lr=lr))
    recipe = _recipe(dp_noise_multiplier=0.5, lr=lr)
    X, y = _data()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        start = build_module(recipe, X.shape[1], 2)
    theta0 = torch.cat([p.detach().reshape(-1) for p in start.parameters()]).numpy()
    run = train_with_gradient_canaries(recipe, X, y, n_classes=2, canaries=100, seed=4)
    theta = torch.cat([p.detach().reshape(-1) for p in run.model.module.parameters()])
    change = (theta0 - theta.numpy())[run.canaries.coordinates]
    expected = run.trace.projections.sum(axis=0) * lr / run.trace.expected_batch_size
    assert np.allclose(change, expected, rtol=1e-3, atol=1e-6)


def test_llr_score_matches_the_mixture_likelihood_ratio():
    q, sigma, clip = 0.2, 0.8, 1.5
    y = np.random.default_rng(0).normal(0.5, 1.0, size=(7, 3))
    out = canary_scores(y, score="llr", sample_rate=q, noise_multiplier=sigma,
                        max_grad_norm=clip)
    sd = sigma * clip
    ratio = ((1 - q) * stats.norm.pdf(y, 0, sd) + q * stats.norm.pdf(y, clip, sd)) \
        / stats.norm.pdf(y, 0, sd)
    assert np.allclose(out, np.log(ratio).sum(axis=0))
    with pytest.raises(ConfigError, match="needs DP-SGD noise"):
        canary_scores(y, score="llr", sample_rate=q, noise_multiplier=0.0)
    with pytest.raises(ConfigError, match="unknown"):
        canary_scores(y, score="max")


def test_same_seed_same_scores_and_early_stopping_refused():
    a, b = _train(_recipe(dp_noise_multiplier=1.0), seed=2), _train(
        _recipe(dp_noise_multiplier=1.0), seed=2)
    assert np.array_equal(a.trace.projections, b.trace.projections)
    with pytest.raises(ConfigError, match="early_stopping"):
        _train(_recipe(early_stopping=2))


# ---------------------------------------------------------------- the audit's numbers


def test_without_noise_every_guess_is_right():
    """Clipping, no noise: an included canary adds C per step drawn (>= 4 of the 40 steps
    here), far above the model's own gradient on most coordinates (a few, such as the
    output layer's, carry more), so the k+ highest are all included and the k- lowest all
    excluded."""
    for seed in (0, 1):
        run = _train(_recipe(), seed=seed)
        tr, inc = run.trace, run.canaries.included
        assert tr.noise_multiplier == 0 and np.all(tr.noise_part == 0)
        assert tr.n_inserted[inc].min() >= 4
        assert np.median(np.abs(tr.data_part)) < 0.1 * tr.max_grad_norm
        b = one_run_audit(canary_scores(tr.projections), inc, k_pos=10, k_neg=10)
        assert b.n_correct == b.n_guesses == 20


def _simulated_null_bounds(runs: int, m: int, k: int, seed: int, score: str):
    """Bounds of null runs (nothing inserted), the projections simulated as the trainer
    records them: own gradient (a fixed heavy-tailed drift per canary) + Gaussian noise."""
    rng = np.random.default_rng(seed)
    T, q, sigma = 50, 0.1, 1.0
    drift = rng.standard_t(3, size=m) * 0.2
    scores = np.empty((runs, m))
    for j in range(runs):
        y = drift + sigma * rng.standard_normal((T, m))
        scores[j] = canary_scores(y, score=score, sample_rate=q, noise_multiplier=sigma)
    included = rng.random((runs, m)) < 0.5
    v = correct_guesses(scores, included, [(k, k)])[:, 0]
    eps = one_run_epsilons(m, np.full(runs, 2 * k), v, delta=1e-5)
    mus = {int(x): one_run_mu(m, 2 * k, int(x)) for x in np.unique(v)}
    return eps, np.array([mus[int(x)] for x in v])


@pytest.mark.parametrize("score", ["sum", "llr"])
def test_null_runs_give_zero_in_at_least_95_percent(score):
    """1,000 simulated null runs: the binomial bound and the GDP mu are 0 in >= 95%."""
    eps, mus = _simulated_null_bounds(1000, 200, 20, seed=7, score=score)
    assert np.mean(eps == 0) >= 0.95
    assert np.mean(mus == 0) >= 0.95


def test_real_null_runs_give_zero():
    """Real training, canaries drawn but nothing inserted: 0 in at least 4 of 5 runs."""
    zeros = 0
    for seed in range(5):
        res = audit_one_run_white_box(data=_dataset(), model_params=_params(
            dp_noise_multiplier=0.5), canaries=100, insert=False, seed=seed)
        assert res.summary()["canaries"]["inserted"] is False
        zeros += res.bound.epsilon == 0 and res.gdp.mu == 0
    assert zeros >= 4


def test_exact_subsampled_gaussian_never_beats_the_accountant_and_a_bug_does():
    """The mechanism each canary sees, simulated exactly (C at each step where it is drawn
    with probability q, plus N(0, (sigma C)^2)), 200 one-run audits at an accountant's
    epsilon (3.9) below what 200 guesses can certify (4.17): the binomial bound never
    exceeds it, and it has power. A canary inserted at EVERY step but accounted at rate q
    (the bug of a worst-case canary in every batch) is caught in every run."""
    from opacus.accountants import RDPAccountant

    T, q, sigma, m, k = 100, 0.1, 1.5, 1000, 100
    acc = RDPAccountant()
    acc.history = [(sigma, q, T)]
    eps_acc = acc.get_epsilon(1e-5)
    assert 3.5 < eps_acc < one_run_epsilons(m, [2 * k], [2 * k], delta=1e-5)[0]
    rng = np.random.default_rng(11)
    runs = 200
    inc = rng.random((runs, m)) < 0.5
    drawn = rng.random((runs, T, m)) < q
    for every_step in (False, True):
        inserted = (np.ones_like(drawn) if every_step else drawn) & inc[:, None, :]
        y = inserted + sigma * rng.standard_normal((runs, T, m))
        for score in ("sum", "llr"):
            s = np.stack([canary_scores(y[j], score=score, sample_rate=q,
                                        noise_multiplier=sigma) for j in range(runs)])
            v = correct_guesses(s, inc, [(k, k)])[:, 0]
            eps = one_run_epsilons(m, np.full(runs, 2 * k), v, delta=1e-5)
            if every_step:
                assert np.all(eps > eps_acc)
            else:
                assert eps.max() <= eps_acc
                assert np.median(eps) > 0.2 * eps_acc  # not a vacuous check


def test_real_dp_runs_stay_below_the_accountant():
    for seed, score in ((0, "sum"), (1, "llr"), (2, "sum")):
        res = audit_one_run_white_box(data=_dataset(), model_params=_params(
            dp_noise_multiplier=0.6), canaries=200, score=score, seed=seed)
        assert res.dp_epsilon_accountant is not None
        assert res.bound.epsilon <= res.dp_epsilon_accountant
        assert res.gdp.epsilon <= res.dp_epsilon_accountant
        assert not res.exceeds_accountant and res.flag is None
        assert res.bound.epsilon > 0  # white-box canaries are seen through this much noise


# ---------------------------------------------------------------- the audit function


def _dataset():
    from miaudit.data import load_dataset

    return load_dataset("wine")


def _params(**kw) -> list[str]:
    base = {"hidden": "512", "epochs": 6, "batch_size": 32, **kw}
    return [f"{k}={v}" for k, v in base.items()]


def test_audit_summary_and_accountant():
    from miaudit.training.dp import dp_accounting

    res = audit_one_run_white_box(data=_dataset(), model_params=_params(dp_epsilon=8),
                                  canaries=100, seed=0)
    s = res.summary()
    recipe = make_recipe("mlp", _params(dp_epsilon=8))
    planned = dp_accounting(recipe, 178)
    # Opacus' accountant, stepped once per step at the records' sampling rate
    assert s["dp_epsilon_accountant"] == pytest.approx(planned.epsilon, rel=1e-9)
    assert s["training"]["steps"] == planned.steps
    assert s["training"]["sample_rate"] == planned.sample_rate
    assert s["canaries"]["n"] == 100 and s["canaries"]["kind"] == "dirac"
    assert s["one_run"]["n_guesses"] == 20 and s["one_run_gdp"]["n_guesses"] == 20
    assert s["tightness_ratio"] == pytest.approx(res.bound.epsilon / planned.epsilon)
    assert "accountant's epsilon" in s["tightness"]
    assert s["ceiling"] >= res.bound.epsilon
    table = res.canaries
    assert list(table.columns) == ["canary", "parameter", "included", "score"]
    assert table.parameter.str.match(r"^\d\.(weight|bias)\[\d+\]$").all()
    json.dumps(s, allow_nan=False)


@pytest.mark.parametrize(("kwargs", "text"), [
    ({"canary_kind": "gauss"}, "kind"),
    ({"score": "max"}, "score"),
    ({"score": "llr"}, "needs DP-SGD noise"),
    ({"canaries": 1}, "at least 2"),
    ({"canaries": 10_000}, "parameters"),
    ({"model_params": _params(dp_epsilon=4), "delta": 1e-7}, "dp_delta"),
])
def test_bad_settings_are_refused(kwargs, text):
    args = {"data": _dataset(), "model_params": _params(), "canaries": 50, **kwargs}
    if text == "parameters":
        args["model_params"] = ["hidden=8", "epochs=1"]
    with pytest.raises(ConfigError, match=text):
        audit_one_run_white_box(**args)


def test_cli_white_box():
    from typer.testing import CliRunner

    from miaudit.cli import app

    runner = CliRunner()
    args = ["audit-one-run", "--data", "wine", "--canaries", "60", "--white-box",
            *[a for p in _params(dp_noise_multiplier=1) for a in ("-p", p)]]
    res = runner.invoke(app, [*args, "--format", "json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    direct = audit_one_run_white_box(data="wine", model_params=_params(dp_noise_multiplier=1),
                                     canaries=60, seed=0)
    assert summary["one_run"]["epsilon"] == direct.bound.epsilon
    assert summary["canaries"]["score"] == "sum" and summary["flag"] is None
    res = runner.invoke(app, [*args, "--score", "llr", "--gradient-canary", "random"])
    assert res.exit_code == 0, res.output
    assert "White-box one-run audit" in res.stdout and "random" in res.stdout
    res = runner.invoke(app, [*args, "--gradient-canary", "gauss"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "gradient canary kind 'gauss'" in res.output
    res = runner.invoke(app, ["audit-one-run", "--data", "wine", "--score", "llr"])
    assert res.exit_code == 1 and "only with --white-box" in res.output
