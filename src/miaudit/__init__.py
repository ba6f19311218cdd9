"""miaudit: audit machine-learning models for membership-inference leakage.

>>> import miaudit
>>> result = miaudit.audit(data="digits", model="logistic")  # doctest: +SKIP
>>> result.summary()["attacks"]["loss"]["auc"]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from miaudit._version import __version__

__all__ = ["AuditResult", "__version__", "audit"]

if TYPE_CHECKING:
    from miaudit.audits import AuditResult, audit


def __getattr__(name: str):
    # Imported on first use, so that `import miaudit` stays light.
    if name in ("audit", "AuditResult"):
        from miaudit import audits

        return getattr(audits, name)
    raise AttributeError(f"module 'miaudit' has no attribute {name!r}")
