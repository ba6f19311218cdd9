"""The registry's database: its URL, the engine (SQLite settings, PostgreSQL driver), read and
write transactions (writes retried when they lose a race) and the schema's migrations.

SQLAlchemy is checked for in :mod:`miaudit.registry.core`, which imports this module.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from miaudit.errors import ConfigError, DependencyError
from miaudit.registry.schema import VERSION_TABLE

#: Environment variable holding the registry's URL.
ENV_VAR = "MIAUDIT_REGISTRY"
#: SQLite file used when neither a URL nor ``$MIAUDIT_REGISTRY`` is given.
DEFAULT_PATH = "~/.local/share/miaudit/registry.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

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


def _chunks(rows: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    """``rows`` in slices of at most ``size`` (one statement each)."""
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _retryable(error: exc.DBAPIError) -> bool:
    """Lost a race (unique key, lock, deadlock, serialization) that a retry resolves."""
    if isinstance(error, exc.IntegrityError):
        return True
    text = str(error.orig).lower()
    return any(s in text for s in ("database is locked", "database table is locked", "busy",
                                   "deadlock", "could not serialize", "could not obtain lock"))


def create_engine(url: str) -> Engine:
    """The engine of a normalised registry URL (SQLite or PostgreSQL)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    try:
        return sa.create_engine(url, pool_pre_ping=True,
                                connect_args={"connect_timeout": 15})
    except ModuleNotFoundError as e:
        raise DependencyError(f"The registry URL needs the database driver {e.name!r}: "
                              f"pip install 'miaudit[postgres]'.") from e
    except exc.ArgumentError as e:
        raise ConfigError(f"The registry URL {url!r} is invalid: {e}.") from e


def _sqlite_engine(url: str) -> Engine:
    """A SQLite engine: WAL, busy timeout, foreign keys, ``BEGIN IMMEDIATE`` for writers."""
    memory = url == "sqlite:///:memory:"
    if memory:
        engine = sa.create_engine(url, poolclass=sa.pool.StaticPool,
                                  connect_args={"check_same_thread": False})
    else:
        path = Path(url.removeprefix("sqlite:///").partition("?")[0])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"Cannot create the registry folder {path.parent}: "
                              f"{e.strerror}; choose another --registry.") from e
        engine = sa.create_engine(url, connect_args={"timeout": _BUSY_TIMEOUT_S})

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


class Database:
    """The engine on one registry URL, its transactions and its schema revision.

    ``url`` is a normalised URL (:func:`normalise_url`). The schema is brought to the newest
    migration before the first read or write (:meth:`ensure_schema`).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.ready = False

    @property
    def shown_url(self) -> str:
        """The URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    # -- transactions ------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session in a read transaction."""
        self.ensure_schema()
        with self.engine.connect() as conn, conn.begin(), Session(bind=conn) as session:
            yield session

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction, retried when it loses a race."""
        self.ensure_schema()
        for attempt in range(_ATTEMPTS):
            try:
                with self.engine.connect() as conn:
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
        self.engine.dispose()

    # -- schema ------------------------------------------------------------------------

    def alembic_config(self, connection: Connection | None = None):
        """Alembic's configuration for the shipped migrations (on ``connection``, if given)."""
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

        return str(ScriptDirectory.from_config(self.alembic_config()).get_current_head())

    def current_revision(self) -> str | None:
        """The schema revision recorded in the database (None before :meth:`upgrade`)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()

    def upgrade(self) -> str:
        """Create or upgrade the schema to the newest migration, under the write lock
        (SQLite) or an advisory lock (PostgreSQL); returns the revision now recorded."""
        from alembic import command

        def migrate(conn: Connection) -> None:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
            command.upgrade(self.alembic_config(conn), "head")

        for attempt in range(_ATTEMPTS):
            try:
                with self.engine.connect() as conn:
                    conn.execution_options(miaudit_write=True)
                    with conn.begin():
                        migrate(conn)
                break
            except exc.DBAPIError as e:
                if attempt == _ATTEMPTS - 1 or not _retryable(e):
                    raise
                time.sleep(0.05 * (1 + random.random()))
        self.ready = True
        return str(self.current_revision())

    def ensure_schema(self) -> None:
        """Upgrade the schema once when it is behind; refuse a revision unknown here."""
        if self.ready:
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
                    ScriptDirectory.from_config(self.alembic_config()).get_revision(current)
                except CommandError as e:
                    raise ConfigError(f"The registry {self.shown_url} has schema revision "
                                      f"{current!r}, "
                                      f"unknown to this miaudit (newest {self.head()!r}): "
                                      f"upgrade miaudit to use it.") from e
            self.upgrade()
        self.ready = True
