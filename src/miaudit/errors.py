"""Every exception and warning that miaudit raises on purpose.

The command line turns a :class:`MiauditError` into one line on stderr and exit code 1;
set ``MIAUDIT_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations


class MiauditError(Exception):
    """Base class of the errors miaudit raises for bad input or settings."""


class DataError(MiauditError):
    """The data set cannot be loaded or is unusable (missing file, NaN, one class, ...)."""


class OutputError(MiauditError):
    """Model outputs are unusable (wrong shape, NaN/inf, not probabilities, ...)."""


class ExposureError(MiauditError):
    """An exposure setting is invalid or too coarse for the requested attack."""


class ConfigError(MiauditError):
    """A setting (recipe, attack name, parameter, output folder) is invalid."""


class MembershipError(MiauditError):
    """The member / non-member split is invalid (overlap, empty side, wrong length)."""


class DependencyError(MiauditError):
    """An optional dependency (for example PyTorch) is needed but not installed."""


class QueryBudgetError(MiauditError):
    """A query to the target would exceed the query budget (nothing was sent)."""


class MiauditWarning(UserWarning):
    """Base class of miaudit's warnings."""


class UndefinedMetricWarning(MiauditWarning):
    """A metric cannot be measured on this sample (reported as null with a reason)."""


class DataWarning(MiauditWarning):
    """Something in the data was changed or dropped (duplicates, missing values)."""


class DegenerateResultWarning(MiauditWarning):
    """A result that is measurable but means little: constant scores, references unlike
    the target, a target at chance accuracy."""


def summary_warnings(caught) -> list[str]:
    """Distinct texts (``"Category: message"``) of warnings caught during an audit, for
    ``summary.json``; not-measurable metrics are left out (each attack's ``undefined``
    entry already gives those reasons)."""
    seen: list[str] = []
    for w in caught:
        if issubclass(w.category, UndefinedMetricWarning):
            continue
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.append(text)
    return seen


def reissue_once(caught) -> None:
    """Issue again warnings caught during an audit, each distinct one once, so that
    callers see them too."""
    import warnings

    seen = set()
    for w in caught:
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
