"""All attack metrics in one call, with a JSON-ready layout."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from miaudit.errors import UndefinedMetricWarning
from miaudit.metrics.privacy import EpsilonBound, audit_epsilon_lower_bound
from miaudit.metrics.roc import (
    AUC_INTERVAL,
    AUC_INTERVAL_CLUSTERED,
    FloatArray,
    _advantage,
    _as_arrays,
    _auc_with_ci,
    _balanced_accuracy,
    _clusters,
    _roc,
    ppv,
)
from miaudit.metrics.tpr import TPR_INTERVAL, TPR_INTERVAL_CLUSTERED, TprAtFpr, _tpr_at_fpr


def _pair(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [float(ci[0]), float(ci[1])]


@dataclass(frozen=True)
class AttackMetrics:
    """Every metric of one attack on one target (see :func:`evaluate`).

    Attributes
    ----------
    auc, auc_ci : float, (lo, hi)
        AUC with its DeLong interval (clustered by record when ``clusters`` was given).
    tpr_at_fpr : dict of str to TprAtFpr
        Keyed by ``str(f)`` of each FPR budget; each carries its ``note`` (bias caveat)
        and ``interval_method``.
    ppv_at_fpr : dict of str to float or None
        PPV at ``prior`` at each operating point, computed with the nominal FPR ``f``.
    balanced_accuracy, advantage : float
    epsilon : EpsilonBound
    n_members, n_non_members : int
    prior, alpha, delta : float
    undefined : dict of str to str
        ``"<figure>[.<fpr>]"`` -> reason, one entry per figure reported as None.
    n_clusters : int or None
        Number of records (clusters) when ``clusters`` was given, else None.
    fpr, tpr : float arrays of shape (G + 1,)
        Full ROC curve for plotting (not part of :meth:`to_dict`).
    """

    auc: float
    auc_ci: tuple[float, float]
    tpr_at_fpr: dict[str, TprAtFpr]
    ppv_at_fpr: dict[str, float | None]
    balanced_accuracy: float
    advantage: float
    epsilon: EpsilonBound
    n_members: int
    n_non_members: int
    prior: float
    alpha: float
    delta: float
    undefined: dict[str, str]
    n_clusters: int | None
    fpr: FloatArray = field(repr=False, compare=False)
    tpr: FloatArray = field(repr=False, compare=False)

    @property
    def interval_method(self) -> dict[str, str]:
        """How each interval was built: ``{"auc": ..., "tpr_at_fpr": ...}``."""
        clustered = self.n_clusters is not None
        return {
            "auc": AUC_INTERVAL_CLUSTERED if clustered else AUC_INTERVAL,
            "tpr_at_fpr": TPR_INTERVAL_CLUSTERED if clustered else TPR_INTERVAL,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (plain Python types; None for unmeasurable figures).

        ``tpr_at_fpr_note`` holds an entry only for the FPR levels whose figure carries a
        caveat (see :attr:`TprAtFpr.note`); ``interval_method`` names the interval
        constructions.
        """
        return {
            "auc": float(self.auc),
            "auc_ci": _pair(self.auc_ci),
            "tpr_at_fpr": {k: v.value for k, v in self.tpr_at_fpr.items()},
            "tpr_at_fpr_ci": {k: _pair(v.ci) for k, v in self.tpr_at_fpr.items()},
            "tpr_at_fpr_note": {k: v.note for k, v in self.tpr_at_fpr.items()
                                if v.note is not None},
            "interval_method": self.interval_method,
            "ppv_at_fpr": dict(self.ppv_at_fpr),
            "balanced_accuracy": float(self.balanced_accuracy),
            "advantage": float(self.advantage),
            "epsilon_lower_bound": self.epsilon.value,
            "epsilon_method": self.epsilon.method,
            "n_members": int(self.n_members),
            "n_non_members": int(self.n_non_members),
            "prior": float(self.prior),
            "alpha": float(self.alpha),
            "undefined": dict(self.undefined),
        }


def evaluate(
    scores: ArrayLike,
    is_member: ArrayLike,
    *,
    fprs: Sequence[float] = (0.01, 0.001, 0.0001),
    alpha: float = 0.05,
    prior: float = 0.5,
    delta: float = 1e-5,
    seed: int = 0,
    clusters: ArrayLike | None = None,
    bernoulli_membership: bool = False,
) -> AttackMetrics:
    """Compute every metric of an attack from its scores (sorting the scores once).

    * AUC with DeLong interval (:func:`~miaudit.metrics.auc_with_ci`);
    * TPR at each FPR budget in ``fprs`` with an interval for the true TPR at the true
      FPR ``f`` (:func:`~miaudit.metrics.tpr_at_fpr`; conservative, None when fewer than
      ``ceil(1/f)`` non-members);
    * PPV at ``prior`` at each operating point, with FPR set to the nominal budget ``f``
      (an upper bound of the achieved FPR, so the PPV is conservative, never overstated);
      None when the TPR there is None;
    * best balanced accuracy and advantage over thresholds;
    * epsilon lower bound by the one-run method over the records
      (:func:`~miaudit.metrics.privacy.audit_epsilon_lower_bound`; Steinke et al. 2023),
      only when ``bernoulli_membership`` says the membership was drawn independently per
      record with probability 1/2 and the scores come from one model (no ``clusters``);
      otherwise None with the reason.

    Parameters
    ----------
    scores : array of shape (n,)
        Higher = more likely member.
    is_member : bool array of shape (n,)
    fprs : sequence of float, default (0.01, 0.001, 0.0001)
    alpha : float, default 0.05
        Significance level of every interval and of the epsilon bound.
    prior : float, default 0.5
        Membership prior for PPV.
    delta : float, default 1e-5
    seed : int, default 0
        Kept for callers; the epsilon bound is deterministic.
    clusters : int array of shape (n,), optional
        The record each score was computed on, when records contribute several scores
        (scores of several targets pooled: each record appears once per target, as a
        member for some and a non-member for others). The AUC and TPR intervals then
        treat records as the independent units (clustered DeLong; design-effect counts).
        None (default): every score independent. The point figures do not change; the
        epsilon bound is not computed (it needs one model's scores).
    bernoulli_membership : bool, default False
        Whether each record's membership was drawn independently with probability 1/2,
        which the one-run epsilon bound needs (an exact random half or a user's own
        training set does not qualify).

    Returns
    -------
    AttackMetrics
        Each unmeasurable figure is None, has an entry in ``undefined`` and triggered an
        :class:`~miaudit.errors.UndefinedMetricWarning`.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> member = np.arange(2000) < 1000
    >>> m = evaluate(rng.normal(size=2000) + member, member)
    >>> sorted(m.to_dict()["tpr_at_fpr"])
    ['0.0001', '0.001', '0.01']
    >>> m.to_dict()["tpr_at_fpr"]["0.0001"] is None
    True
    """
    s, y = _as_arrays(scores, is_member)
    r = _roc(s, y)
    cl = None if clusters is None else _clusters(s, y, clusters)
    auc, auc_ci = _auc_with_ci(r, alpha, cl)

    undefined: dict[str, str] = {}
    ops: dict[str, TprAtFpr] = {}
    ppvs: dict[str, float | None] = {}
    for f in fprs:
        f = float(f)
        key = str(f)
        op = _tpr_at_fpr(r, f, alpha, cl)
        ops[key] = op
        if op.value is None:
            reason = op.reason or "not measurable"
            undefined[f"tpr_at_fpr.{key}"] = reason
            undefined[f"tpr_at_fpr_ci.{key}"] = reason
            undefined[f"ppv_at_fpr.{key}"] = reason
            ppvs[key] = None
            continue
        # With TPR = 0 no member is called a member at this level: the precision of an
        # empty set of calls is undefined, not 0.
        ppvs[key] = ppv(op.value, f, prior) if op.value > 0 else None
        if ppvs[key] is None:
            reason = (f"undefined: no member is called a member at FPR <= {f:g} (TPR = 0), "
                      "so the precision of the calls is 0/0")
            undefined[f"ppv_at_fpr.{key}"] = reason
            warnings.warn(
                f"PPV at FPR {f:g} reported as None: {reason}", UndefinedMetricWarning, stacklevel=2
            )

    eps = audit_epsilon_lower_bound(s, y, bernoulli_membership=bernoulli_membership
                                    and clusters is None, delta=delta, alpha=alpha)
    if eps.value is None:
        undefined["epsilon_lower_bound"] = eps.reason or "not measurable"

    fpr = r.fp / r.n_neg
    tpr = r.tp / r.n_pos
    fpr.setflags(write=False)
    tpr.setflags(write=False)
    return AttackMetrics(
        auc=auc,
        auc_ci=auc_ci,
        tpr_at_fpr=ops,
        ppv_at_fpr=ppvs,
        balanced_accuracy=_balanced_accuracy(r),
        advantage=_advantage(r),
        epsilon=eps,
        n_members=r.n_pos,
        n_non_members=r.n_neg,
        prior=float(prior),
        alpha=float(alpha),
        delta=float(delta),
        undefined=undefined,
        n_clusters=None if cl is None else cl.n,
        fpr=np.asarray(fpr, dtype=np.float64),
        tpr=np.asarray(tpr, dtype=np.float64),
    )
