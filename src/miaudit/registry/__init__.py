"""A registry of data sets, models and audit runs: which data entered which models, and how
exposed each record was in their audits (consent and traceability).

>>> from miaudit.registry import Registry
>>> reg = Registry("sqlite:///:memory:")  # default: $MIAUDIT_REGISTRY or ~/.local/share
>>> reg.runs(), reg.models()
([], [])

SQLite works out of the box (SQLAlchemy and Alembic are dependencies of miaudit);
PostgreSQL needs the ``postgres`` extra (psycopg): ``pip install 'miaudit[postgres]'``. The
command line (``miaudit runs``, ``models``, ``show``, ``compare``, ``trace``, ``record``) lives
in :mod:`miaudit.cli.registry`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["DEFAULT_PATH", "ENV_VAR", "Registry", "default_url", "normalise_url",
           "resolve_run_dir"]

if TYPE_CHECKING:
    from miaudit.registry.core import (
        DEFAULT_PATH,
        ENV_VAR,
        Registry,
        default_url,
        normalise_url,
        resolve_run_dir,
    )


def __getattr__(name: str):
    # SQLAlchemy is imported on first use, so that `miaudit --help` stays light.
    if name in __all__:
        import miaudit.registry.core as core

        return getattr(core, name)
    raise AttributeError(f"module 'miaudit.registry' has no attribute {name!r}")
