"""U-LiRA: per-record check, with shadow models, that a model unlearned records.

U-LiRA (Hayes et al. 2024) asks, for each record of a set F that a model claims to have
forgotten, whether the model's output on it looks like that of a model that *unlearned* it
or of one that *never trained on it*. Gaussians are fitted to the logit-scaled confidence
``phi`` of the record under the shadow models that unlearned it (same training, same
unlearning method) and under the shadows retrained without it (LiRA's fit, Carlini et al.
2022: a variance pooled over records below 64 shadows, else per record), and the score is
the log-likelihood ratio ``log N(phi; mu_u, s_u^2) - log N(phi; mu_r, s_r^2)``.

Score direction: **higher = looks unlearned**, a trace of the record remains; a small
p-value is evidence against "never trained on".

Reported (:class:`ULiraFigures`): per record the ratio and its p-value under "never
trained on" (the probability, under the retrained Gaussian widened for its estimated mean,
of a ratio at least as high), records flagged by Benjamini-Hochberg at false discovery
rate ``alpha``; and Hayes et al.'s balanced game, the model after forgetting (F
"unlearned") against the retrained model (F "never trained on"): the AUC of the ratio with
a clustered DeLong interval (records as clusters) and the accuracy of the ``ratio > 0``
rule. Under exact unlearning the two models are exchangeable and both sit at 0.5.

:func:`miaudit.governance.forget.verify_forget` runs it when given ``shadows`` (their
format is in :mod:`miaudit.governance.forget`); the functions here work on arrays of
``phi``.

References
----------
Hayes, Shumailov, Triantafillou, Khalifa & Papernot (2024), "Inexact Unlearning Needs More
Careful Evaluations to Avoid a False Sense of Privacy".
Carlini et al. (2022), "Membership Inference Attacks From First Principles", S&P.
Benjamini & Hochberg (1995), "Controlling the false discovery rate", JRSS B 57(1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from miaudit.attacks.lira import GLOBAL_VARIANCE_BELOW, gaussian_log_ratio
from miaudit.attacks.reference_signals import gaussian_fit
from miaudit.metrics.binomial import _beta_interval
from miaudit.metrics.multiple_testing import benjamini_hochberg
from miaudit.metrics.roc import auc_with_ci

__all__ = [
    "ULiraFigures",
    "ulira_figures",
    "ulira_scores",
]


def _p_values(phi: np.ndarray, mu_u: np.ndarray, s_u: np.ndarray, mu_r: np.ndarray,
              s_r: np.ndarray, scale: np.ndarray, dist) -> np.ndarray:
    """P(LLR(x) >= LLR(phi)) for ``x = mu_r + scale * T``, ``T ~ dist`` (standardised).

    ``LLR(x) - LLR(phi) = (x - phi) (a (x + phi) + b)`` with ``a = (1/s_r^2 - 1/s_u^2) / 2``
    and ``b = mu_u / s_u^2 - mu_r / s_r^2``: its roots are ``phi`` and ``-b/a - phi``; the
    region is the outside of the roots when ``a > 0``, the inside when ``a < 0``, and a
    half-line (``a = 0``) in the direction of ``b``.
    """
    a = 0.5 * (1 / s_r**2 - 1 / s_u**2)
    b = mu_u / s_u**2 - mu_r / s_r**2
    linear = np.abs(a) <= 1e-9 * np.maximum(1 / s_r**2, 1 / s_u**2)
    safe_a = np.where(linear, 1.0, a)
    other = -b / safe_a - phi
    lo = (np.minimum(phi, other) - mu_r) / scale
    hi = (np.maximum(phi, other) - mu_r) / scale
    t = (phi - mu_r) / scale
    quad = np.where(a > 0, dist.cdf(lo) + dist.sf(hi), dist.cdf(hi) - dist.cdf(lo))
    half = np.where(b > 0, dist.sf(t), np.where(b < 0, dist.cdf(t), 1.0))
    return np.clip(np.where(linear, half, quad), 0.0, 1.0)


def ulira_scores(phi: np.ndarray, phi_unlearned: np.ndarray, unlearned_mask: np.ndarray,
                 phi_retrained: np.ndarray, retrained_mask: np.ndarray, *,
                 per_example: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """U-LiRA's per-record log-likelihood ratio "unlearned" vs "never trained on", and
    its p-value under "never trained on".

    Per record, Gaussians are fitted to the shadows' logit-scaled confidences
    (:func:`~miaudit.attacks.reference_signals.gaussian_fit`: variance pooled over the
    records, or per record): ``N(mu_u, s_u^2)`` over the shadows that unlearned it and
    ``N(mu_r, s_r^2)`` over those retrained without it. The score is
    ``log N(phi; mu_u, s_u^2) - log N(phi; mu_r, s_r^2)`` (higher = looks unlearned: a
    trace of the record remains).

    The p-value tests "never trained on": ``phi`` is then one more draw of the retrained
    side, so the retrained mean is re-estimated with it, ``m = (phi + J mu_r) / (J + 1)``
    (``J`` the record's retrained shadows), and the p-value is the probability that
    ``x = m + s_r sqrt(J / (J + 1)) T`` scores at least as high as ``phi`` under the ratio
    with ``m`` in place of ``mu_r``; ``T`` is standard normal (pooled variance) or Student's
    t with ``J - 1`` degrees of freedom (variance per record). Under the null the residual
    ``phi - m`` is independent of ``m`` and of the unlearned shadows, which fix the test's
    region, so the p-value is exact for Gaussian outputs with a known pooled variance. (With
    ``mu_r`` itself the region would lean towards where ``phi`` fell: 6% false alarms at
    5% with 8 shadows a side.) With a variance per record it is approximate; both are
    checked by simulation in the tests.

    Parameters
    ----------
    phi : array of shape (N,)
        The audited model's logit-scaled confidence on each record.
    phi_unlearned, phi_retrained : arrays of shape (K, N) and (J, N)
        The shadows' logit-scaled confidences.
    unlearned_mask, retrained_mask : bool arrays of shape (K, N) and (J, N)
        Which shadow counts for which record; every record needs one on each side (two
        for a per-record variance).
    per_example : bool, optional
        Variance per record; default: when every record has at least 64 shadows on each
        side (LiRA's rule, Carlini et al. 2022), else pooled.

    Returns
    -------
    llr : array of shape (N,)
        Higher = more like a model that unlearned the record.
    p_value : array of shape (N,)

    References
    ----------
    Hayes et al. (2024), "Inexact Unlearning Needs More Careful Evaluations to Avoid a False
    Sense of Privacy" (U-LiRA); Carlini et al. (2022), S&P (LiRA).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> u, r = rng.normal(2, 1, (8, 3)), rng.normal(0, 1, (8, 3))
    >>> m = np.ones((8, 3), bool)
    >>> llr, p = ulira_scores(np.array([3.0, 0.0, -3.0]), u, m, r, m)
    >>> bool(llr[0] > llr[1] > llr[2]), bool(p[0] < p[1] < p[2])
    (True, True)
    """
    n_u = unlearned_mask.sum(axis=0)
    n_r = retrained_mask.sum(axis=0)
    if per_example is None:
        per_example = bool(min(n_u.min(), n_r.min()) >= GLOBAL_VARIANCE_BELOW)
    mu_u, s_u, _ = gaussian_fit(phi_unlearned, unlearned_mask, per_example)
    mu_r, s_r, _ = gaussian_fit(phi_retrained, retrained_mask, per_example)
    llr = gaussian_log_ratio(phi, mu_u, s_u, mu_r, s_r)
    # the test: the retrained mean re-estimated with the audited output among the J
    # never-trained draws (m); under "never trained on" the residual phi - m is independent
    # of m (and of the unlearned shadows), so the region's shape, fixed by m, cannot lean
    # towards where phi fell, and phi - m ~ N(0, s_r^2 J / (J + 1))
    m = (phi + n_r * mu_r) / (n_r + 1)
    scale = s_r * np.sqrt(n_r / (n_r + 1))
    dist = stats.t(df=np.maximum(n_r - 1, 1)) if per_example else stats.norm()
    return llr, _p_values(phi, mu_u, s_u, m, s_r, scale, dist)


@dataclass(frozen=True, eq=False)
class ULiraFigures:
    """U-LiRA (Hayes et al. 2024) on the records of F: see the module docstring.

    Attributes
    ----------
    record_ids : array of str, shape (n_forget,)
    llr_new, llr_retrained : arrays of shape (n_forget,)
        The log-likelihood ratio on the model after forgetting and on the retrained model
        (higher = looks unlearned).
    p_values : array of shape (n_forget,)
        Of ``llr_new``, under "never trained on".
    flagged : bool array of shape (n_forget,)
        Benjamini-Hochberg at false discovery rate ``alpha``.
    auc, auc_ci : float, (float, float)
        The ratio's AUC, model after forgetting (positives) against the retrained model
        (negatives) on the same records; clustered DeLong interval, records as clusters.
        0.5 under exact unlearning.
    accuracy, accuracy_ci : float, (float, float)
        Hayes et al.'s figure: accuracy of the rule "unlearned when the ratio > 0" on that
        balanced game; normal interval over records. 0.5 under exact unlearning.
    detected : bool
        ``auc_ci[0] > 0.5``: the model after forgetting is told apart from retraining.
    n_unlearned_shadows, n_retrained_shadows : int
    variance : {"pooled", "per record"}
    """

    record_ids: np.ndarray
    llr_new: np.ndarray
    llr_retrained: np.ndarray
    p_values: np.ndarray
    flagged: np.ndarray
    auc: float
    auc_ci: tuple[float, float]
    accuracy: float
    accuracy_ci: tuple[float, float]
    n_unlearned_shadows: int
    n_retrained_shadows: int
    variance: str

    @property
    def detected(self) -> bool:
        """True when the AUC interval lies above 0.5."""
        return self.auc_ci[0] > 0.5

    def to_dict(self) -> dict:
        """JSON-ready fields, with one entry per record (by ID)."""
        records = [{"record_id": str(i), "llr": float(v), "llr_retrained": float(w),
                    "p_value": float(p), "flagged": bool(f)}
                   for i, v, w, p, f in zip(self.record_ids, self.llr_new,
                                            self.llr_retrained, self.p_values, self.flagged,
                                            strict=True)]
        return {"auc": self.auc, "auc_ci": list(self.auc_ci), "accuracy": self.accuracy,
                "accuracy_ci": list(self.accuracy_ci), "detected": self.detected,
                "n_flagged": int(self.flagged.sum()),
                "n_unlearned_shadows": self.n_unlearned_shadows,
                "n_retrained_shadows": self.n_retrained_shadows, "variance": self.variance,
                "records": records}


def ulira_figures(record_ids: np.ndarray, phi_new: np.ndarray, phi_retrained_model: np.ndarray,
                  shadows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], *,
                  alpha: float = 0.05, per_example: bool | None = None) -> ULiraFigures:
    """U-LiRA on F: per-record ratios and p-values of the model after forgetting, and the
    balanced game against the retrained model (see :class:`ULiraFigures`).

    Parameters
    ----------
    record_ids : array of shape (n,)
    phi_new, phi_retrained_model : arrays of shape (n,)
        Logit-scaled confidences of the model after forgetting and of the retrained model.
    shadows : tuple
        ``(phi_unlearned, unlearned_mask, phi_retrained, retrained_mask)`` as for
        :func:`ulira_scores`.
    alpha : float, default 0.05
        Two-sided error rate of the intervals; false discovery rate of the flags.
    per_example : bool, optional
        As for :func:`ulira_scores`.
    """
    phi_u, mask_u, phi_r, mask_r = shadows
    if per_example is None:
        per_example = bool(min(mask_u.sum(0).min(), mask_r.sum(0).min())
                           >= GLOBAL_VARIANCE_BELOW)
    llr_new, p = ulira_scores(phi_new, phi_u, mask_u, phi_r, mask_r, per_example=per_example)
    llr_ret, _ = ulira_scores(phi_retrained_model, phi_u, mask_u, phi_r, mask_r,
                              per_example=per_example)
    n = len(llr_new)
    auc, auc_ci = auc_with_ci(np.concatenate([llr_new, llr_ret]),
                              np.arange(2 * n) < n, alpha,
                              clusters=np.concatenate([np.arange(n), np.arange(n)]))
    right = 0.5 * ((llr_new > 0).astype(float) + (llr_ret <= 0).astype(float))
    acc = float(right.mean())
    sd = float(right.std(ddof=1)) if n > 1 else 0.0
    if sd > 0:
        half = float(stats.norm.ppf(1 - alpha / 2)) * sd / math.sqrt(n)
        acc_ci = (max(0.0, acc - half), min(1.0, acc + half))
    else:
        acc_ci = _beta_interval(acc * n, n, alpha)
    return ULiraFigures(np.asarray(record_ids).astype(str), llr_new, llr_ret, p,
                        benjamini_hochberg(p, alpha), float(auc), tuple(auc_ci), acc,
                        tuple(acc_ci), int(mask_u.shape[0]), int(mask_r.shape[0]),
                        "per record" if per_example else "pooled")
