"""Calibrated loss, the quantile-regression attack and the privacy risk score, against
direct computations and known properties, and end to end on real data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax
from scipy.stats import rankdata
from sklearn.metrics import mean_pinball_loss, roc_auc_score

import miaudit
from miaudit.attacks import ATTACKS, AttackInput, References
from miaudit.attacks.base import Population
from miaudit.attacks.difficulty import calibrated_loss
from miaudit.attacks.privacy_risk import privacy_risk
from miaudit.attacks.quantile import _design, gaussian_fit, quantile_attack
from miaudit.errors import ConfigError, MiauditWarning
from miaudit.signals import observe
from miaudit.targets import check_outputs


def _observe(z, y, exposure="logits"):
    return observe(check_outputs(z, "logits"), y, exposure)


def _reference_game(n=80, c=3, k=6, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    membership = rng.random((k + 1, n)) < 0.5
    membership[1:3, :] = [[True], [False]]  # every record has an OUT reference
    difficulty = rng.normal(0, spread, n)
    logits = rng.normal(0, 1, (k + 1, n, c))
    logits[:, np.arange(n), y] += 2 * membership + difficulty
    return logits, membership, y


@pytest.mark.parametrize("exposure", ["logits", "probabilities", "loss"])
def test_calibrated_loss_matches_a_direct_loop(exposure):
    logits, membership, y = _reference_game()
    inputs = AttackInput(_observe(logits[0], y, exposure),
                         references=References(logits[1:], membership[1:], y))
    expected = np.empty(len(y))
    for i in range(len(y)):
        out = [-log_softmax(logits[k, i])[y[i]] for k in range(1, len(logits))
               if not membership[k, i]]
        expected[i] = np.mean(out) + log_softmax(logits[0, i])[y[i]]
    np.testing.assert_allclose(calibrated_loss(inputs), expected, rtol=1e-6, atol=1e-9)


def test_calibrated_loss_beats_loss_when_records_differ_in_difficulty():
    logits, membership, y = _reference_game(n=400, k=8, seed=1, spread=3.0)
    inputs = AttackInput(_observe(logits[0], y),
                         references=References(logits[1:], membership[1:], y))
    calibrated = roc_auc_score(membership[0], calibrated_loss(inputs))
    loss = roc_auc_score(membership[0], ATTACKS["loss"].score(inputs))
    assert calibrated > loss + 0.05


def test_calibrated_loss_nan_without_an_out_reference():
    logits, membership, y = _reference_game()
    membership[1:, 0] = True
    inputs = AttackInput(_observe(logits[0], y),
                         references=References(logits[1:], membership[1:], y))
    with pytest.warns(MiauditWarning, match="1 of 80"):
        scores = calibrated_loss(inputs)
    assert np.isnan(scores[0]) and np.isfinite(scores[1:]).all()


def _quantile_world(n=600, z=3000, seed=0, leak=1.0):
    """Records whose features set the target's confidence (a location and a spread per
    record), members lifted by ``leak``; ``z`` population records drawn alike."""
    rng = np.random.default_rng(seed)

    def draw(m, member):
        x = rng.normal(0, 1, (m, 3))
        y = rng.integers(0, 2, m)
        phi = 2 * x[:, 0] + y + np.exp(0.5 * x[:, 1]) * rng.normal(0, 1, m) + leak * member
        logits = np.zeros((m, 2))
        logits[np.arange(m), y] = phi  # two classes: phi is exactly the logit margin
        return x, y, logits

    is_member = rng.random(n) < 0.5
    x, y, logits = draw(n, is_member)
    px, py, plog = draw(z, np.zeros(z, dtype=bool))
    inputs = AttackInput(_observe(logits, y), features=x,
                         population=Population(_observe(plog, py), features=px))
    return inputs, is_member


def _margin(obs):
    """The phi set in :func:`_quantile_world` (two classes: the true class's logit)."""
    return obs.logits[np.arange(len(obs.labels)), obs.labels]


@pytest.mark.parametrize("method", ["gaussian", "pinball"])
def test_quantile_threshold_zero_holds_the_false_positive_rate(method):
    """Thresholded at 0 (its own predicted 99% quantile), fresh non-members are flagged at
    about 1% (the pinball loss's defining property; the Gaussian's 99% point)."""
    inputs, _ = _quantile_world(n=20_000, z=20_000, leak=0.0)  # 10,000 learnt from
    flagged = np.mean(quantile_attack(inputs, method=method) > 0)
    # boosting with the pinball loss learns a far tail coarsely (leaves of 20 records)
    assert 0.004 < flagged < (0.025 if method == "gaussian" else 0.03), flagged


def test_quantile_gaussian_form_recovers_the_mean_and_spread():
    """The world's phi given x is N(2 x0 + y, exp(x1)): the fitted mean and standard
    deviation follow the closed forms."""
    inputs, _ = _quantile_world(n=4000, z=20_000, leak=0.0)
    x, y = inputs.features, inputs.target.labels
    pop = inputs.population
    x_pop, categorical = _design(pop.features, pop.target.labels)
    mean, sigma = gaussian_fit(x_pop, _margin(pop.target),
                               _design(x, y)[0], categorical, seed=0)
    inner = (np.abs(x[:, 0]) < 1.5) & (np.abs(x[:, 1]) < 1.5)
    error = np.abs(mean - (2 * x[:, 0] + y))[inner]
    assert error.mean() < 0.2 and np.percentile(error, 99) < 0.6
    ratio = sigma[inner] / np.exp(0.5 * x[inner, 1])
    assert abs(np.median(ratio) - 1) < 0.1 and np.percentile(ratio, 90) < 1.5


def test_quantile_regressor_beats_the_constant_quantile_on_pinball_loss():
    """An independent check of the regressor: scikit-learn's pinball loss of its predicted
    99% quantile on fresh non-members is below the best constant's."""
    inputs, _ = _quantile_world(n=5000, z=5000, leak=0.0)
    phi = _margin(inputs.target)
    predicted = phi - quantile_attack(inputs, method="pinball")
    pop_phi = _margin(inputs.population.target)
    constant = np.full_like(phi, np.quantile(pop_phi, 0.99))
    assert (mean_pinball_loss(phi, predicted, alpha=0.99)
            < 0.8 * mean_pinball_loss(phi, constant, alpha=0.99))


def test_quantile_beats_loss_when_confidence_depends_on_the_record():
    inputs, is_member = _quantile_world()
    quantile = roc_auc_score(is_member, quantile_attack(inputs))
    loss = roc_auc_score(is_member, ATTACKS["loss"].score(inputs))
    assert quantile > loss + 0.1


def test_quantile_refuses_without_what_it_learns_from():
    inputs, _ = _quantile_world(n=50, z=100)
    with pytest.raises(ConfigError, match="population data"):
        quantile_attack(AttackInput(inputs.target, features=inputs.features))
    with pytest.raises(ConfigError, match="features"):
        quantile_attack(AttackInput(inputs.target, population=inputs.population))
    small = Population(_observe(inputs.population.target.logits[:10],
                                inputs.population.target.labels[:10]),
                       features=inputs.population.features[:10])
    with pytest.warns(MiauditWarning, match="10 population record"):
        few = quantile_attack(AttackInput(inputs.target, population=small,
                                          features=inputs.features))
    np.testing.assert_array_equal(rankdata(few), rankdata(_margin(inputs.target)))
    with pytest.raises(ConfigError, match=r"fpr must lie in \(0, 0.5\)"):
        quantile_attack(inputs, fpr=0.7)
    with pytest.raises(ConfigError, match="method must be one of gaussian, pinball"):
        quantile_attack(inputs, method="normal")


def test_quantile_runs_in_a_recipe_audit_with_population_and_not_on_outputs(tmp_path):
    result = miaudit.audit(data="digits", model="logistic", attacks=["loss", "quantile"],
                           population_fraction=0.2, seed=0, cache=False)
    assert tuple(result.attacks["quantile"].knowledge) == ("population",)
    assert 0.4 < result.attacks["quantile"].auc.value <= 1.0
    rng = np.random.default_rng(0)
    path = tmp_path / "outputs.npz"
    np.savez(path, logits=rng.normal(0, 1, (100, 3)), labels=rng.integers(0, 3, 100),
             is_member=rng.random(100) < 0.5)
    with pytest.raises(ConfigError, match="population data"):
        miaudit.audit(outputs=str(path), attacks=["quantile"])


@pytest.mark.parametrize("method", ["gaussian", "pinball"])
def test_quantile_on_a_model_that_cannot_leak_is_at_chance(method):
    inputs, is_member = _quantile_world(n=4000, z=2000, seed=3, leak=0.0)
    auc = roc_auc_score(is_member, quantile_attack(inputs, method=method))
    assert abs(auc - 0.5) < 0.04


def _risk_inputs(n=3000, k=4, seed=0, c=3):
    """References where a member's true-class logit is lifted by 2 (class 0 by 4)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    membership = rng.random((k + 1, n)) < 0.5
    lift = np.where(y == 0, 4.0, 2.0)
    logits = rng.normal(0, 1, (k + 1, n, c))
    logits[:, np.arange(n), y] += lift * membership
    inputs = AttackInput(_observe(logits[0], y, "probabilities"),
                         references=References(logits[1:], membership[1:], y))
    return inputs, membership[0], logits, y


def test_privacy_risk_is_calibrated_on_fresh_records():
    """Among records given a risk near r, about a share r are members (prior 1/2): the
    score reads as a probability."""
    inputs, is_member, _, _ = _risk_inputs(n=20_000)
    risk = privacy_risk(inputs)
    assert ((risk > 0) & (risk < 1)).all()
    for low, high in ((0.1, 0.3), (0.4, 0.6), (0.7, 0.9)):
        band = (risk >= low) & (risk < high)
        assert band.sum() > 200
        assert abs(is_member[band].mean() - risk[band].mean()) < 0.05, (low, high)


def test_privacy_risk_matches_the_bayes_posterior_of_a_known_model():
    """With Gaussian signals of known means the true posterior is a closed form; the
    histogram estimate follows it (bin centres, away from the tails)."""
    rng = np.random.default_rng(2)
    n, k = 40_000, 2
    y = np.zeros(n, dtype=int)
    membership = rng.random((k + 1, n)) < 0.5
    # two classes; the true-class margin is N(2 * member, 1): Mentr is monotone in it
    margin = rng.normal(0, 1, (k + 1, n)) + 2.0 * membership
    logits = np.zeros((k + 1, n, 2))
    logits[..., 0] = margin
    inputs = AttackInput(_observe(logits[0], y, "probabilities"),
                         references=References(logits[1:], membership[1:], y))
    risk = privacy_risk(inputs)
    middle = (margin[0] > -0.5) & (margin[0] < 2.5)
    bayes = 1 / (1 + np.exp(-(2.0 * margin[0] - 2.0)))  # N(2,1) vs N(0,1) log-ratio
    assert np.abs(risk[middle] - bayes[middle]).max() < 0.08


def test_privacy_risk_is_per_class():
    """Class 0 leaks more: the same output is riskier in class 0 than in class 1."""
    inputs, is_member, _, y = _risk_inputs()
    risk = privacy_risk(inputs)
    assert risk[(y == 0) & is_member].mean() > risk[(y == 1) & is_member].mean() + 0.05
    assert roc_auc_score(is_member, risk) > roc_auc_score(is_member, ATTACKS["mentr"].score(
        inputs)) - 0.01


def test_privacy_risk_refuses_references_without_both_sides():
    inputs, _, logits, y = _risk_inputs(n=50)
    refs = References(logits[1:], np.zeros((4, 50), dtype=bool), y)
    with pytest.raises(ConfigError, match="none \\(or all\\)"):
        privacy_risk(AttackInput(inputs.target, references=refs))
