"""The audits: :func:`audit` (classification models), :func:`~miaudit.audits.lm.audit_lm`
(language models), the exposure comparison, privacy-utility sweeps and the one-run DP
audit (:mod:`~miaudit.audits.sweep`). Each builds a game, trains or queries its models,
runs the attacks the threat model allows, measures them and returns an
:class:`~miaudit.results.result.AuditResult`.

>>> import miaudit
>>> result = miaudit.audit(data="digits", model="logistic")  # doctest: +SKIP
>>> result.summary()["attacks"]["loss"]["auc"]  # doctest: +SKIP
"""

from miaudit.audits.classification import audit
from miaudit.results.result import AttackReport, AuditResult, Figure, VerdictReport
from miaudit.training.cache import ModelCache

__all__ = ["AttackReport", "AuditResult", "Figure", "ModelCache", "VerdictReport", "audit"]
