"""The quantile-regression attack (Bertran et al., "Scalable Membership Inference Attacks
via Quantile Regression", NeurIPS 2023): no reference model.

A record is a member when the target's confidence on it is unusually high *for that
record*. Instead of training reference models to learn what "usual" is, regressors learn
it from population data, records set aside that the target never trained on: from a
record's features and label they predict the distribution of the target's logit-scaled
confidence ``phi = log(p_y / (1 - p_y))`` on non-members like it (scikit-learn's
``HistGradientBoostingRegressor``). Two ways, both scored so that the threshold 0 flags a
share ``fpr`` of non-members:

* ``method="gaussian"`` (default): a Gaussian per record (the authors' released code fits
  a gradient-boosted mean and variance on tabular data): a mean ``mu(x)`` (squared error)
  and a spread ``sigma(x)`` (regression of the log absolute residual, out-of-fold, so the
  spread is not the fit's optimistic in-sample one); the score is
  ``(phi - mu) / sigma - z_{1-fpr}``, one model for every level;
* ``method="pinball"``: the paper's attack as stated: the ``1 - fpr`` quantile ``q(x)``
  learnt with the pinball loss; the score is ``phi - q(x)``, exact at the one level.

On Location30 (no reference model, three seeds) the Gaussian form finds 3.9x LOSS's TPR at
1% FPR with 10% of the pool set aside as population data and 9.0x with 50%, the pinball
one 1.3x and 5.4x (``python benchmarks/low_budget.py``, benchmarks/RESULTS.md, "Attacks
without reference models"): a far tail quantile is hard to learn from a few thousand
records.
Higher = member. Knowledge (``Attack.knowledge``): ``population``; it also reads the
records' features (``AttackInput.features``, ``Population.features``), which an audit of
precomputed outputs does not have.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import ndtri

from miaudit.attacks._sampling import content_folds, content_subsample
from miaudit.attacks.base import Attack, AttackInput, register_attack
from miaudit.attacks.reference_signals import POPULATION, observed_phi
from miaudit.defaults import QUANTILE_METHODS
from miaudit.errors import ConfigError, MiauditWarning

#: The level whose threshold is the score's 0 by default (the paper's 1%).
DEFAULT_FPR = 0.01
#: Below this many population records no regressor is fitted: the population's own mean
#: and spread (or quantile) stand for every record's, with a warning.
MIN_POPULATION = 20
#: The regressors learn from at most this many population records (chosen by content):
#: beyond it they gain little and their time grows with the records.
MAX_POPULATION_ROWS = 10_000
#: Folds of the out-of-fold residuals of the Gaussian form.
_FOLDS = 5
#: ``E[log |Z|]`` for a standard normal ``Z``: ``-(Euler's gamma + log 2) / 2``.
_MEAN_LOG_ABS_NORMAL = -(np.euler_gamma + np.log(2.0)) / 2
#: Gradient boosting settings (fixed, not tuned: nothing here is fitted on the target).
_BOOSTING = {"max_iter": 200, "learning_rate": 0.05, "min_samples_leaf": 20,
             "early_stopping": False}


def _design(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list[bool]]:
    """The regressors' inputs: the features and the label, as a categorical column when
    the classes fit the booster's bins (255), else as a number."""
    x = np.asarray(features, dtype=np.float64).reshape(len(labels), -1)
    categorical = int(labels.max(initial=0)) < 255
    return (np.column_stack([x, labels.astype(np.float64)]),
            [False] * x.shape[1] + [categorical])


def _regressor(categorical: list[bool], seed: int, quantile: float | None = None):
    from sklearn.ensemble import HistGradientBoostingRegressor

    loss = {} if quantile is None else {"loss": "quantile", "quantile": quantile}
    return HistGradientBoostingRegressor(categorical_features=categorical, random_state=seed,
                                         **loss, **_BOOSTING)


def gaussian_fit(x_pop: np.ndarray, phi_pop: np.ndarray, x: np.ndarray,
                 categorical: list[bool], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted mean and standard deviation of ``phi`` on non-members at ``x``: the mean
    by squared error, the spread from the out-of-fold residuals' log absolute values
    (``E log|r| = log sigma + E log|Z|`` for Gaussian ``r``)."""
    from sklearn.model_selection import PredefinedSplit, cross_val_predict

    mean = _regressor(categorical, seed).fit(x_pop, phi_pop)
    folds = PredefinedSplit(content_folds(np.column_stack([x_pop, phi_pop]),
                                          min(_FOLDS, len(phi_pop)), seed))
    held_out = cross_val_predict(_regressor(categorical, seed), x_pop, phi_pop, cv=folds)
    log_abs = np.log(np.abs(phi_pop - held_out) + 1e-6)
    log_sigma = _regressor(categorical, seed).fit(x_pop, log_abs).predict(x)
    return mean.predict(x), np.exp(log_sigma - _MEAN_LOG_ABS_NORMAL)


def quantile_attack(inputs: AttackInput, *, fpr: float = DEFAULT_FPR,
                    method: str = "gaussian", seed: int = 0) -> np.ndarray:
    """Quantile regression on population data (Bertran et al., NeurIPS 2023): the target's
    ``phi`` on the record against the distribution of ``phi`` on non-members predicted
    from the record's features and label (see the module). Higher = member; the threshold
    0 flags about a share ``fpr`` of non-members.

    Parameters
    ----------
    inputs : AttackInput
        Needs ``population`` (with ``features``) and ``features``.
    fpr : float in (0, 0.5), default 0.01
        The level of the threshold 0.
    method : {"gaussian", "pinball"}, default "gaussian"
    seed : int, default 0

    Knowledge: ``population``.
    """
    if not 0.0 < fpr < 0.5:
        raise ConfigError(f"The quantile attack's fpr must lie in (0, 0.5), got {fpr}.")
    if method not in QUANTILE_METHODS:
        raise ConfigError("The quantile attack's method must be one of "
                          f"{', '.join(QUANTILE_METHODS)}, "
                          f"got {method!r}.")
    pop = inputs.population
    if pop is None:
        raise ConfigError("The attack 'quantile' learns from population data (records set "
                          "aside from the audit); this audit has none. Set population "
                          "records aside (--population-fraction), or leave it out.")
    if inputs.features is None or pop.features is None:
        raise ConfigError("The attack 'quantile' predicts from the records' features, which "
                          "an audit of precomputed outputs does not have; audit a model or "
                          "a recipe on a data set, or leave it out.")
    x_pop, categorical = _design(pop.features, pop.target.labels)
    phi_pop = observed_phi(pop.target)
    rows = content_subsample(np.column_stack([x_pop, phi_pop]), MAX_POPULATION_ROWS, seed)
    x_pop, phi_pop = x_pop[rows], phi_pop[rows]
    x, _ = _design(inputs.features, inputs.target.labels)
    phi = observed_phi(inputs.target)
    if pop.size < MIN_POPULATION:
        warnings.warn(
            f"quantile: {pop.size} population record(s), fewer than {MIN_POPULATION}: no "
            "regressor is fitted and the population's own distribution stands for every "
            "record's (the score then ranks like LOSS). Set more records aside "
            "(--population-fraction).", MiauditWarning, stacklevel=2)
        if method == "pinball":
            return phi - np.quantile(phi_pop, 1.0 - fpr)
        return (phi - phi_pop.mean()) / max(float(phi_pop.std()), 1e-6) - ndtri(1.0 - fpr)
    if method == "pinball":
        return phi - _regressor(categorical, seed, 1.0 - fpr).fit(x_pop, phi_pop).predict(x)
    mean, sigma = gaussian_fit(x_pop, phi_pop, x, categorical, seed)
    return (phi - mean) / sigma - ndtri(1.0 - fpr)


register_attack(Attack(
    # knowledge: the target's outputs on population data, and the records' features
    "quantile", quantile_attack, frozenset({"loss"}),
    "target's confidence over its non-member quantile predicted from the record",
    "Bertran et al., NeurIPS 2023", knowledge=POPULATION,
))
