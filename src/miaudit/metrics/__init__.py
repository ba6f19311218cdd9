"""Metrics of membership-inference attacks with honest uncertainty.

Pure functions over ``scores`` (higher = more likely member) and ``is_member`` (True =
member). A threshold ``t`` predicts member for ``score >= t``. Figures that cannot be
measured on the sample are None with a reason, and emit
:class:`~miaudit.errors.UndefinedMetricWarning`.
"""

from miaudit.metrics.binomial import clopper_pearson
from miaudit.metrics.evaluate import AttackMetrics, evaluate
from miaudit.metrics.multiple_testing import benjamini_hochberg, holm
from miaudit.metrics.privacy import EpsilonBound
from miaudit.metrics.roc import (
    AUC_INTERVAL,
    AUC_INTERVAL_CLUSTERED,
    AucComparison,
    advantage,
    auc_delong,
    auc_with_ci,
    balanced_accuracy,
    compare_aucs,
    paired_auc_covariance,
    ppv,
    roc_counts,
    roc_curve,
)
from miaudit.metrics.tpr import (
    TPR_INTERVAL,
    TPR_INTERVAL_CLUSTERED,
    TprAtFpr,
    needed_non_members,
    tpr_at_fpr,
)

__all__ = [
    "AUC_INTERVAL",
    "AUC_INTERVAL_CLUSTERED",
    "TPR_INTERVAL",
    "TPR_INTERVAL_CLUSTERED",
    "AttackMetrics",
    "AucComparison",
    "EpsilonBound",
    "TprAtFpr",
    "advantage",
    "auc_delong",
    "auc_with_ci",
    "balanced_accuracy",
    "benjamini_hochberg",
    "clopper_pearson",
    "compare_aucs",
    "evaluate",
    "holm",
    "needed_non_members",
    "paired_auc_covariance",
    "ppv",
    "roc_counts",
    "roc_curve",
    "tpr_at_fpr",
]
