"""The registry of data sets, models and audit runs (SQLite or PostgreSQL)."""

from __future__ import annotations

import difflib
import json
import math
import os
import random
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from miaudit.errors import ConfigError, DependencyError

try:
    import sqlalchemy as sa
    from sqlalchemy import event, exc, func, select
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.orm import Session
except ImportError as _exc:  # pragma: no cover - the registry extra is missing
    raise DependencyError("The registry needs SQLAlchemy 2 and Alembic (dependencies of "
                          "miaudit): pip install 'SQLAlchemy>=2' alembic.") from _exc

import miaudit.registry._compare as _compare
import miaudit.registry._prepare as _prepare
from miaudit.registry.schema import (
    VERSION_TABLE,
    Dataset,
    Model,
    ModelRecord,
    Record,
    RecordRisk,
    Run,
    RunAttack,
    RunModel,
)

__all__ = ["DEFAULT_PATH", "ENV_VAR", "Registry", "default_url", "normalise_url",
           "resolve_run_dir"]

#: Environment variable holding the registry's URL.
ENV_VAR = "MIAUDIT_REGISTRY"
#: SQLite file used when neither a URL nor ``$MIAUDIT_REGISTRY`` is given.
DEFAULT_PATH = "~/.local/share/miaudit/registry.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 2000
_ATTEMPTS = 12
_BUSY_TIMEOUT_S = 60
#: Key of the PostgreSQL advisory lock held while migrating.
_PG_LOCK = int.from_bytes(b"miaudit", "big")
T = TypeVar("T")


def default_url() -> str:
    """The registry URL: ``$MIAUDIT_REGISTRY``, else SQLite at :data:`DEFAULT_PATH`."""
    return os.environ.get(ENV_VAR) or f"sqlite:///{DEFAULT_PATH}"


def normalise_url(url: str) -> str:
    """Normalise a registry URL.

    ``postgres://`` and ``postgresql://`` become ``postgresql+psycopg://`` (psycopg 3; an
    explicit driver is kept), ``~`` in a SQLite path is expanded, and a plain file path
    means a SQLite file.

    Examples
    --------
    >>> normalise_url("postgres://u@db:5432/audits")
    'postgresql+psycopg://u@db:5432/audits'
    >>> normalise_url("sqlite:///:memory:")
    'sqlite:///:memory:'
    """
    url = url.strip()
    if not url:
        raise ConfigError("The registry URL is empty; give e.g. sqlite:///path/registry.db or "
                          "postgresql://user@host/db (or set $MIAUDIT_REGISTRY).")
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    scheme, rest = url.split("://", 1)
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    if scheme.startswith("postgresql+"):
        return url
    if scheme in ("sqlite", "sqlite+pysqlite"):
        if rest in ("", "/", "/:memory:"):
            return "sqlite:///:memory:"
        if not rest.startswith("/"):
            raise ConfigError(f"The registry URL {url!r} has no file path; write "
                              f"sqlite:///relative.db or sqlite:////absolute/path.db.")
        path, _, query = rest[1:].partition("?")
        path = str(Path(path).expanduser())
        return f"sqlite:///{path}" + (f"?{query}" if query else "")
    raise ConfigError(f"The registry URL {url!r} is not supported; use sqlite:///FILE or "
                      f"postgresql://USER@HOST/DB.")


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite stores naive UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat(timespec="seconds")


def _chunks(rows: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _retryable(error: exc.DBAPIError) -> bool:
    """Lost a race (unique key, lock, deadlock, serialization) that a retry resolves."""
    if isinstance(error, exc.IntegrityError):
        return True
    text = str(error.orig).lower()
    return any(s in text for s in ("database is locked", "database table is locked", "busy",
                                   "deadlock", "could not serialize", "could not obtain lock"))


def _same_run(a: dict, b: dict) -> bool:
    """Whether two summaries describe the same run: the same settings, data and attack
    figures (a folder written over by another run differs in at least one)."""
    def auc(summary: dict) -> dict:
        return {k: v.get("auc") for k, v in (summary.get("attacks") or {}).items()}

    def close(x, y) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-15)
        return x == y

    fa, fb = auc(a), auc(b)
    return (json.dumps(a.get("settings"), sort_keys=True, default=str)
            == json.dumps(b.get("settings"), sort_keys=True, default=str)
            and (a.get("data") or {}).get("fingerprint") == (b.get("data") or {}).get("fingerprint")
            and fa.keys() == fb.keys() and all(close(fa[k], fb[k]) for k in fa))


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
        self._engine = self._create_engine()
        self._ready = False

    def __repr__(self) -> str:
        return f"Registry({self.shown_url!r})"

    @property
    def shown_url(self) -> str:
        """The URL with any password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    # -- connections -------------------------------------------------------------------

    def _create_engine(self) -> Engine:
        if self.url.startswith("sqlite"):
            return self._sqlite_engine()
        try:
            return sa.create_engine(self.url, pool_pre_ping=True,
                                    connect_args={"connect_timeout": 15})
        except ModuleNotFoundError as e:
            raise DependencyError(f"The registry URL needs the database driver {e.name!r}: "
                                  f"pip install 'miaudit[postgres]'.") from e
        except exc.ArgumentError as e:
            raise ConfigError(f"The registry URL {self.url!r} is invalid: {e}.") from e

    def _sqlite_engine(self) -> Engine:
        memory = self.url == "sqlite:///:memory:"
        if memory:
            engine = sa.create_engine(self.url, poolclass=sa.pool.StaticPool,
                                      connect_args={"check_same_thread": False})
        else:
            path = Path(self.url.removeprefix("sqlite:///").partition("?")[0])
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"Cannot create the registry folder {path.parent}: "
                                  f"{e.strerror}; choose another --registry.") from e
            engine = sa.create_engine(self.url, connect_args={"timeout": _BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record) -> None:
            # transactions are begun by the hook below, not by the sqlite3 module
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # a writer takes the write lock at once: no deadlock on a lock upgrade
            write = conn.get_execution_options().get("miaudit_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @contextmanager
    def _read(self) -> Iterator[Session]:
        self._ensure_schema()
        with self._engine.connect() as conn, conn.begin(), Session(bind=conn) as session:
            yield session

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction, retried when it loses a race."""
        self._ensure_schema()
        for attempt in range(_ATTEMPTS):
            try:
                with self._engine.connect() as conn:
                    conn.execution_options(miaudit_write=True)
                    with conn.begin():
                        return work(conn)
            except exc.DBAPIError as e:
                if attempt == _ATTEMPTS - 1 or not _retryable(e):
                    if isinstance(e, exc.OperationalError):  # read-only, disk full, gone
                        reason = str(e.orig).strip().splitlines()[0].rstrip(".")
                        raise ConfigError(f"The registry {self.shown_url} refused the write: "
                                          f"{reason}; check --registry or ${ENV_VAR}.") from e
                    raise
                time.sleep(min(2.0, 0.02 * 2**attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the pooled connections."""
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------

    def _alembic_config(self, connection: Connection | None = None):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("version_table", VERSION_TABLE)
        if connection is not None:
            cfg.attributes["connection"] = connection
        return cfg

    def head(self) -> str:
        """The revision of the newest migration shipped with miaudit."""
        from alembic.script import ScriptDirectory

        return str(ScriptDirectory.from_config(self._alembic_config()).get_current_head())

    def current_revision(self) -> str | None:
        """The schema revision recorded in the database (None before :meth:`upgrade`)."""
        from alembic.runtime.migration import MigrationContext

        with self._engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()

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
        from alembic import command

        def migrate(conn: Connection) -> None:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
            command.upgrade(self._alembic_config(conn), "head")

        for attempt in range(_ATTEMPTS):
            try:
                with self._engine.connect() as conn:
                    conn.execution_options(miaudit_write=True)
                    with conn.begin():
                        migrate(conn)
                break
            except exc.DBAPIError as e:
                if attempt == _ATTEMPTS - 1 or not _retryable(e):
                    raise
                time.sleep(0.05 * (1 + random.random()))
        self._ready = True
        return str(self.current_revision())

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        try:
            current = self.current_revision()
        except exc.OperationalError as e:
            reason = str(e.orig).strip().splitlines()[0].rstrip(".")
            raise ConfigError(f"Cannot open the registry {self.shown_url}: {reason}; check "
                              f"--registry or ${ENV_VAR}.") from e
        if current != self.head():
            from alembic.script import ScriptDirectory
            from alembic.util import CommandError

            if current is not None:
                try:
                    ScriptDirectory.from_config(self._alembic_config()).get_revision(current)
                except CommandError as e:
                    raise ConfigError(f"The registry {self.shown_url} has schema revision "
                                      f"{current!r}, "
                                      f"unknown to this miaudit (newest {self.head()!r}): "
                                      f"upgrade miaudit to use it.") from e
            self.upgrade()
        self._ready = True

    # -- writing -----------------------------------------------------------------------

    def _insert_ignore(self, conn: Connection, table: Any, rows: Sequence[dict],
                       returning: Any = None) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING. With ``returning`` (one row): that column of
        the inserted row, None when the row existed."""
        if not rows:
            return None
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        statement = insert(table).on_conflict_do_nothing()
        if returning is not None:
            return conn.execute(statement.returning(returning), rows[0]).scalar()
        for chunk in _chunks(rows):
            conn.execute(statement, list(chunk))
        return None

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

        def work(conn: Connection) -> str:
            now = _now()
            self._insert_ignore(conn, Dataset.__table__, [rows.dataset | {"created": now}])
            known = set(conn.scalars(select(Record.fingerprint).where(
                Record.dataset_fingerprint == rows.dataset["fingerprint"])))
            self._insert_ignore(conn, Record.__table__,
                                [r for r in rows.records if r["fingerprint"] not in known])
            model_ids: dict[str, int] = {}
            for m in sorted(rows.models, key=lambda m: m.content_hash):
                if m.content_hash in model_ids:
                    continue
                created = self._insert_ignore(conn, Model.__table__, [
                    m.fields | {"content_hash": m.content_hash, "created": now}],
                    returning=Model.id)
                if created is None:  # registered before (by this or another process)
                    model_ids[m.content_hash] = conn.scalar(
                        select(Model.id).where(Model.content_hash == m.content_hash))
                    continue
                model_ids[m.content_hash] = created
                self._insert_ignore(conn, ModelRecord.__table__, [
                    {"model_id": created, "record_fingerprint": fp} for fp in m.members])
            run_id = f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
            conn.execute(sa.insert(Run), [rows.run | {"id": run_id, "created": now}])
            roles: dict[int, dict] = {}
            for m in rows.models:  # a target that is also another target's reference
                mid = model_ids[m.content_hash]
                if mid not in roles or (m.role == "target" and roles[mid]["role"] != "target"):
                    roles[mid] = {"run_id": run_id, "model_id": mid, "role": m.role,
                                  "target_index": m.target_index}
            conn.execute(sa.insert(RunModel), list(roles.values()))
            if rows.attacks:
                conn.execute(sa.insert(RunAttack), [a | {"run_id": run_id} for a in rows.attacks])
            risks = {}
            for m in rows.models:
                for r in m.risks:
                    risks[(model_ids[m.content_hash], r["record_fingerprint"])] = r | {
                        "run_id": run_id, "model_id": model_ids[m.content_hash]}
            for chunk in _chunks(list(risks.values())):
                conn.execute(sa.insert(RecordRisk), list(chunk))
            return run_id

        return self._write(work)

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
        query = (select(Run.id, Run.created, Run.run_dir, Run.exposure, Run.best_auc,
                        Run.best_tpr_at_0_1, Run.best_tpr_attack, Run.max_epsilon_lb,
                        Run.dataset_fingerprint, Dataset.name)
                 .outerjoin(Dataset, Dataset.fingerprint == Run.dataset_fingerprint)
                 .order_by(Run.created.desc(), Run.id.desc()))
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
            targets = self._targets(conn, [r.id for r in rows])
        return [{"id": r.id, "created": _iso(r.created), "data": r.name,
                 "dataset_fingerprint": r.dataset_fingerprint,
                 "model": targets.get(r.id), "exposure": r.exposure, "best_auc": r.best_auc,
                 "best_tpr_at_0_1": r.best_tpr_at_0_1, "best_tpr_attack": r.best_tpr_attack,
                 "max_epsilon_lb": r.max_epsilon_lb, "run_dir": r.run_dir} for r in rows]

    @staticmethod
    def _targets(conn: Session, run_ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in _chunks(run_ids, 500):
            q = (select(RunModel.run_id, Model.description, Model.name)
                 .join(Model, Model.id == RunModel.model_id)
                 .where(RunModel.run_id.in_(chunk), RunModel.role == "target")
                 .order_by(RunModel.target_index))
            for run_id, description, name in conn.execute(q):
                out.setdefault(run_id, description or name or "")
        return out

    def models(self) -> list[dict]:
        """Every registered model with its data set and the runs that used it.

        Returns
        -------
        models : list of dict
            ``id``, ``content_hash``, ``data``, ``dataset_fingerprint``, ``name``, ``recipe``,
            ``seed``, ``description``, ``n_members``, ``created``, ``runs`` (IDs, as target),
            ``reference_in`` (IDs, as reference).
        """
        with self._read() as conn:
            models = conn.execute(
                select(Model, Dataset.name)
                .join(Dataset, Dataset.fingerprint == Model.dataset_fingerprint)
                .order_by(Model.id)).all()
            uses: dict[int, dict[str, list[str]]] = {}
            for model_id, run_id, role in conn.execute(
                    select(RunModel.model_id, RunModel.run_id, RunModel.role)
                    .order_by(RunModel.run_id)):
                uses.setdefault(model_id, {"target": [], "reference": []}).setdefault(
                    role, []).append(run_id)
        out = []
        for m, data in models:
            use = uses.get(m.id, {})
            out.append(self._model_dict(m) | {"data": data, "runs": use.get("target", []),
                                              "reference_in": use.get("reference", [])})
        return out

    @staticmethod
    def _model_dict(m: Model) -> dict[str, Any]:
        return {"id": m.id, "content_hash": m.content_hash,
                "dataset_fingerprint": m.dataset_fingerprint, "name": m.name,
                "recipe": m.recipe, "seed": m.seed, "description": m.description,
                "n_members": m.n_members, "created": _iso(m.created)}

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
        escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._read() as conn:
            if conn.scalar(select(Run.id).where(Run.id == key)) is not None:
                return key
            found = list(conn.scalars(select(Run.id).where(
                Run.id.like(f"{escaped}%", escape="\\")).order_by(Run.id).limit(6)))
            if len(found) == 1:
                return found[0]
            if found:
                shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
                raise ConfigError(f"Run ID prefix {key!r} is ambiguous: it matches {shown}; "
                                  f"give more characters.")
            every = list(conn.scalars(select(Run.id).order_by(Run.created.desc()).limit(5000)))
        close = difflib.get_close_matches(key, every, n=3, cutoff=0.6)
        hint = (f" Did you mean {' or '.join(close)}?" if close
                else " List the runs with 'miaudit runs'.")
        raise ConfigError(f"Unknown run ID {key!r} in the registry.{hint}")

    def run_dir(self, run_id: str) -> Path:
        """The folder of a run (ID or unique prefix)."""
        full = self.resolve(run_id)
        with self._read() as conn:
            path, summary = conn.execute(
                select(Run.run_dir, Run.summary).where(Run.id == full)).one()
        if not path:
            raise ConfigError(f"Run {full} was recorded without a run folder.")
        saved = Path(path) / "summary.json"
        try:
            current = json.loads(saved.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            current = None  # a moved or damaged folder: the caller's error says so
        if current is not None and summary is not None and not _same_run(current, summary):
            raise ConfigError(
                f"Run {full} was recorded from {path}, but that folder now holds another "
                "run (written over with --overwrite?); give the folder itself, or re-record "
                f"it with 'miaudit registry record {path}'.")
        return Path(path)

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
        with self._read() as conn:
            run = conn.scalar(select(Run).where(Run.id == full))
            assert run is not None
            dataset = conn.scalar(select(Dataset).where(
                Dataset.fingerprint == run.dataset_fingerprint))
            models = conn.execute(
                select(Model, RunModel.role, RunModel.target_index)
                .join(RunModel, RunModel.model_id == Model.id)
                .where(RunModel.run_id == full)
                .order_by(RunModel.role.desc(), RunModel.target_index, Model.id)).all()
            attacks = conn.scalars(select(RunAttack).where(RunAttack.run_id == full)
                                   .order_by(RunAttack.attack)).all()
            member = (RecordRisk.run_id == full) & RecordRisk.is_member
            counts = conn.execute(select(
                func.count(),
                func.count().filter(RecordRisk.is_member),
                func.count().filter(member & (RecordRisk.risk >= 0.99)),
                func.count().filter(member & (RecordRisk.risk >= 0.999)),
            ).where(RecordRisk.run_id == full)).one()
            top = conn.execute(
                select(RecordRisk.model_id, RecordRisk.record_fingerprint, RecordRisk.risk,
                       Record.record_id)
                .outerjoin(Record, (Record.fingerprint == RecordRisk.record_fingerprint)
                           & (Record.dataset_fingerprint == run.dataset_fingerprint))
                .where(member, RecordRisk.risk.is_not(None))
                .order_by(RecordRisk.risk.desc(), RecordRisk.record_fingerprint)
                .limit(10)).all()
        return {
            "id": run.id, "created": _iso(run.created), "run_dir": run.run_dir,
            "miaudit_version": run.miaudit_version, "exposure": run.exposure,
            "settings": run.settings, "spec": run.spec, "summary": run.summary,
            "headline": {"best_auc": run.best_auc, "best_tpr_at_0_1": run.best_tpr_at_0_1,
                         "best_tpr_attack": run.best_tpr_attack,
                         "max_epsilon_lb": run.max_epsilon_lb},
            "dataset": None if dataset is None else {
                "fingerprint": dataset.fingerprint, "name": dataset.name,
                "source": dataset.source, "n_records": dataset.n_records},
            "models": [self._model_dict(m) | {"role": role, "target_index": t}
                       for m, role, t in models],
            "attacks": [{c.key: getattr(a, c.key) for c in RunAttack.__table__.columns
                         if c.key != "run_id"} for a in attacks],
            "risk": {"attack": run.risk_attack, "n_records": counts[0],
                     "n_members": counts[1], "members_at_risk_0_99": counts[2],
                     "members_at_risk_0_999": counts[3],
                     "top_members": [{"model_id": r.model_id, "record_id": r.record_id,
                                      "fingerprint": r.record_fingerprint, "risk": r.risk}
                                     for r in top]},
        }

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
        with self._read() as conn:
            if _HEX64.match(key.lower()):
                fingerprints = [key.lower()]
            else:
                fingerprints = sorted(set(conn.scalars(
                    select(Record.fingerprint).where(Record.record_id == key))))
            out = []
            for fp in fingerprints:
                ids = [f"{name or ds[:12]}:{rid}" for name, ds, rid in conn.execute(
                    select(Dataset.name, Record.dataset_fingerprint, Record.record_id)
                    .join(Dataset, Dataset.fingerprint == Record.dataset_fingerprint)
                    .where(Record.fingerprint == fp).order_by(Dataset.name))]
                models = conn.execute(
                    select(Model, Dataset.name)
                    .join(ModelRecord, ModelRecord.model_id == Model.id)
                    .join(Dataset, Dataset.fingerprint == Model.dataset_fingerprint)
                    .where(ModelRecord.record_fingerprint == fp).order_by(Model.id)).all()
                for m, data in models:
                    runs = conn.execute(
                        select(Run.id, Run.created, Run.exposure, Run.risk_attack,
                               RunModel.role, RecordRisk.risk)
                        .join(RunModel, RunModel.run_id == Run.id)
                        .outerjoin(RecordRisk, (RecordRisk.run_id == Run.id)
                                   & (RecordRisk.model_id == m.id)
                                   & (RecordRisk.record_fingerprint == fp))
                        .where(RunModel.model_id == m.id)
                        .order_by(Run.created, Run.id)).all()
                    out.append({
                        "record_fingerprint": fp, "record_ids": ids,
                        "model": self._model_dict(m) | {"data": data},
                        "runs": [{"run_id": r.id, "created": _iso(r.created), "role": r.role,
                                  "exposure": r.exposure, "attack": r.risk_attack,
                                  "risk": r.risk} for r in runs],
                    })
        return out

    def known_record(self, record: str) -> list[str]:
        """The ``data set:ID`` of every registered record with this fingerprint or ID."""
        key = str(record).strip()
        cond = (Record.fingerprint == key.lower()) if _HEX64.match(key.lower()) \
            else (Record.record_id == key)
        with self._read() as conn:
            return [f"{name or ds[:12]}:{rid}" for name, ds, rid in conn.execute(
                select(Dataset.name, Record.dataset_fingerprint, Record.record_id)
                .join(Dataset, Dataset.fingerprint == Record.dataset_fingerprint)
                .where(cond).order_by(Dataset.name, Record.record_id).limit(20))]


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
