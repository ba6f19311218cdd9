"""Audit orchestration: the :func:`audit` entry point and its result."""

from miaudit.orchestration.core import audit
from miaudit.orchestration.result import AuditResult

__all__ = ["AuditResult", "audit"]
