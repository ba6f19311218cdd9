"""The registry of data sets, models and audit runs (SQLite or PostgreSQL): the
:class:`Registry` and :func:`resolve_run_dir`.

The work is done by the modules next to this one: :mod:`.database` (URL, engine,
transactions, migrations), :mod:`._prepare` (a run's rows, before any transaction),
:mod:`.writing` (the inserts), :mod:`.queries` (the readers) and :mod:`._compare`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from miaudit.errors import ConfigError, DependencyError

try:
    from sqlalchemy.engine import Engine
except ImportError as _exc:  # pragma: no cover - the registry extra is missing
    raise DependencyError("The registry needs SQLAlchemy 2 and Alembic (dependencies of "
                          "miaudit): pip install 'SQLAlchemy>=2' alembic.") from _exc

import miaudit.registry._compare as _compare
import miaudit.registry._prepare as _prepare
import miaudit.registry.queries as _queries
import miaudit.registry.writing as _writing
from miaudit.registry.database import (
    DEFAULT_PATH,
    ENV_VAR,
    Database,
    default_url,
    normalise_url,
)

__all__ = ["DEFAULT_PATH", "ENV_VAR", "Registry", "default_url", "normalise_url",
           "resolve_run_dir"]


class Registry:
    """Data sets, models and audit runs in a database, for consent and traceability.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL: ``sqlite:///FILE`` (``~`` expanded, folder created) or
        ``postgresql://USER:PASS@HOST:PORT/DB``. Default: ``$MIAUDIT_REGISTRY``, else
        ``sqlite:///~/.local/share/miaudit/registry.db``.

    Notes
    -----
    The schema is created and upgraded by Alembic migrations on first use (:meth:`upgrade`).
    SQLite runs in WAL mode with a 60 s busy timeout and every write transaction starts with
    ``BEGIN IMMEDIATE``; on PostgreSQL inserts use ``ON CONFLICT DO NOTHING``. Either way
    several processes may record runs of the same data set and models at once, and a
    transaction that loses a race is retried.

    Examples
    --------
    >>> reg = Registry("sqlite:///:memory:")
    >>> reg.runs()
    []
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = normalise_url(url if url is not None else default_url())
        self._db = Database(self.url)
        self._engine: Engine = self._db.engine

    def __repr__(self) -> str:
        return f"Registry({self.shown_url!r})"

    @property
    def shown_url(self) -> str:
        """The URL with any password hidden."""
        return self._db.shown_url

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.dialect

    def close(self) -> None:
        """Close the pooled connections."""
        self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------

    def head(self) -> str:
        """The revision of the newest migration shipped with miaudit."""
        return self._db.head()

    def current_revision(self) -> str | None:
        """The schema revision recorded in the database (None before :meth:`upgrade`)."""
        return self._db.current_revision()

    def upgrade(self) -> str:
        """Create or upgrade the schema to the newest migration (``alembic upgrade head``).

        Safe to call from several processes at once: the migration runs in one transaction
        holding the database's write lock (SQLite) or an advisory lock (PostgreSQL), and a
        database already at the head is left alone.

        Returns
        -------
        revision : str
            The revision now recorded in the database.
        """
        return self._db.upgrade()

    # -- writing -----------------------------------------------------------------------

    def record_run(self, summary: dict, scores: pd.DataFrame, run_dir: str | os.PathLike,
                   *, spec: dict | None = None) -> str:
        """Record an audit run with its data set, records, models, attacks and record risks.

        Parameters
        ----------
        summary : dict
            The run's ``summary.json`` (``AuditResult.summary()``).
        scores : pandas.DataFrame
            The run's score table (``AuditResult.scores``): ``exposure``, ``target``,
            ``record_id``, ``fingerprint``, ``is_member`` and one column per attack.
        run_dir : path
            The run folder (stored resolved; its ``signals.npz``, when present, adds the
            run's online reference models).
        spec : dict, optional
            The run's specification, stored as JSON; default ``summary["spec"]`` (runs
            started from a spec file), else none.

        Returns
        -------
        run_id : str
            ``YYYYmmdd-HHMMSS-xxxxxx`` (UTC time and 6 random hex digits).

        Notes
        -----
        A data set is identified by its fingerprint and a model by data set, recipe, seed and
        training set: recording them again reuses the stored rows. Record risks are those of
        the first exposure's strongest attack (highest TPR at 0.1% FPR, then AUC), for
        members and non-members of every target model.
        """
        rows = _prepare.prepare(summary, scores, Path(run_dir) if run_dir is not None else None,
                                spec)
        return self._db.write(lambda conn: _writing.insert_run(conn, self.dialect, rows))

    def record_run_dir(self, run_dir: str | os.PathLike, *, spec: dict | None = None) -> str:
        """Record a saved run folder (``summary.json`` and ``scores.parquet``).

        Returns
        -------
        run_id : str
        """
        import json

        from miaudit.errors import DataError

        folder = Path(run_dir).expanduser()
        summary_file, scores_file = folder / "summary.json", folder / "scores.parquet"
        for f in (summary_file, scores_file):
            if not f.is_file():
                raise DataError(f"{f} not found: give the folder of a saved miaudit run "
                                f"(with summary.json and scores.parquet).")
        try:
            summary = json.loads(summary_file.read_text(encoding="utf-8"))
            scores = pd.read_parquet(scores_file)
        except (OSError, ValueError) as e:
            raise DataError(f"Cannot read the run folder {folder}: {e}.") from e
        return self.record_run(summary, scores, folder, spec=spec)

    # -- reading -----------------------------------------------------------------------

    def runs(self, limit: int | None = 50) -> list[dict]:
        """The newest runs first, with their headline figures.

        Returns
        -------
        runs : list of dict
            ``id``, ``created`` (ISO, UTC), ``data`` (name), ``dataset_fingerprint``,
            ``model`` (target recipe description), ``exposure``, ``best_auc``,
            ``best_tpr_at_0_1``, ``best_tpr_attack``, ``max_epsilon_lb``, ``run_dir``.
        """
        with self._db.read() as conn:
            return _queries.runs(conn, limit)

    def models(self) -> list[dict]:
        """Every registered model with its data set and the runs that used it.

        Returns
        -------
        models : list of dict
            ``id``, ``content_hash``, ``data``, ``dataset_fingerprint``, ``name``, ``recipe``,
            ``seed``, ``description``, ``n_members``, ``created``, ``runs`` (IDs, as target),
            ``reference_in`` (IDs, as reference).
        """
        with self._db.read() as conn:
            return _queries.models(conn)

    def resolve(self, run_id: str) -> str:
        """The full ID of a run given its ID or a unique prefix of it.

        Raises
        ------
        ConfigError
            No run or several runs match (with close matches or the candidates).
        """
        key = str(run_id).strip()
        if not key:
            raise ConfigError("The run ID is empty; list the runs with 'miaudit runs'.")
        with self._db.read() as conn:
            return _queries.resolve(conn, key)

    def run_dir(self, run_id: str) -> Path:
        """The folder of a run (ID or unique prefix)."""
        full = self.resolve(run_id)
        with self._db.read() as conn:
            path, summary = _queries.stored_run_dir(conn, full)
        return _queries.check_run_dir(full, path, summary)

    def show(self, run_id: str) -> dict:
        """Everything about a run (ID or unique prefix).

        Returns
        -------
        run : dict
            ``id``, ``created``, ``run_dir``, ``miaudit_version``, ``exposure``,
            ``settings``, ``spec``, ``summary``, ``headline`` (best AUC, best TPR at 0.1%
            FPR and its attack, max epsilon lower bound), ``dataset`` (fingerprint, name,
            source, n_records), ``models`` (with ``role`` and ``target_index``),
            ``attacks`` (figures and intervals), ``risk`` (attack, records, members,
            members at risk >= 0.99 and >= 0.999, the 10 most exposed members).
        """
        full = self.resolve(run_id)
        with self._db.read() as conn:
            return _queries.show(conn, full)

    def compare(self, run_a: str, run_b: str) -> dict:
        """What changed between two runs, and which figures changed beyond the intervals.

        Returns
        -------
        comparison : dict
            ``run_a``, ``run_b``; ``changed`` (exposure, data fingerprint, settings and
            target recipe keys that differ, each with values ``a`` and ``b``); ``attacks``:
            per attack present in both, per figure (AUC, TPR at 1% and 0.1% FPR, epsilon
            lower bound) ``a``, ``b``, ``change`` (b - a), the intervals ``a_ci``, ``b_ci``
            and ``beyond_intervals`` (True when the intervals do not overlap, None when an
            interval is missing); ``beyond_intervals`` (list), ``verdict`` and ``rule``.
        """
        return _compare.compare_runs(self.show(run_a), self.show(run_b))

    def trace(self, record: str) -> list[dict]:
        """Every registered model trained on a record, the runs auditing it and the record's
        risk in each.

        Parameters
        ----------
        record : str
            A record fingerprint (64 hex digits) or a record ID (then the records with that
            ID in every registered data set).

        Returns
        -------
        models : list of dict
            One per (record, model): ``record_fingerprint``, ``record_ids`` (data set name
            and ID), ``model`` (as in :meth:`models`), ``runs``: per run auditing or using
            the model, ``run_id``, ``created``, ``role``, ``exposure``, ``attack`` (the run's
            strongest) and ``risk`` (None when the run did not score the model, e.g. as a
            reference). Empty when no registered model was trained on the record.
        """
        key = str(record).strip()
        with self._db.read() as conn:
            return _queries.trace(conn, key)

    def known_record(self, record: str) -> list[str]:
        """The ``data set:ID`` of every registered record with this fingerprint or ID."""
        key = str(record).strip()
        with self._db.read() as conn:
            return _queries.known_record(conn, key)


def resolve_run_dir(run_id: str) -> Path:
    """The folder of a run recorded in the default registry (ID or unique prefix): how the
    commands that take a RUN look up a run ID (``miaudit.cli.common.run_folder``).

    Raises
    ------
    ConfigError
        No registry exists yet, or it holds no such run (with close matches).
    """
    url = normalise_url(default_url())
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///").partition("?")[0])
        if not path.exists():
            raise ConfigError(f"{run_id!r} is neither a run folder nor a recorded run: the "
                              f"registry {path} does not exist yet.")
    with Registry(url) as reg:
        return reg.run_dir(run_id)
