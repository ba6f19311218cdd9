"""Audit orchestration: the :func:`audit` entry point, its result, and the model cache."""

from miaudit.orchestration.cache import ModelCache
from miaudit.orchestration.core import audit
from miaudit.orchestration.result import AttackReport, AuditResult, Figure, VerdictReport

__all__ = ["AttackReport", "AuditResult", "Figure", "ModelCache", "VerdictReport", "audit"]
