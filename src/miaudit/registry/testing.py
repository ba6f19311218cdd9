"""A throwaway PostgreSQL server for tests of the registry.

:func:`temporary_postgres` runs ``initdb`` and ``pg_ctl`` in a new temporary folder, on
127.0.0.1 and a free port, trusts local connections, and yields a registry URL; the server
is stopped and the folder deleted afterwards. The server binaries come from ``$PATH``,
Debian's ``/usr/lib/postgresql/VERSION/bin`` or the ``pgserver`` package (PyPI); as root,
the server runs as the ``postgres`` user (else ``nobody``), since PostgreSQL refuses root.
``scripts/postgres.sh`` installs the binaries where they are missing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PostgresUnavailable", "find_postgres_bin", "temporary_postgres"]

DATABASE = "miaudit_test"
SUPERUSER = "miaudit"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here (the message says why)."""


def find_postgres_bin() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    candidates = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                    key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                    reverse=True)
    candidates += debian
    spec = importlib.util.find_spec("pgserver")  # located, not imported
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "pginstall" / "bin" for p in spec.submodule_search_locations]
    for folder in candidates:
        if all(os.access(folder / exe, os.X_OK) for exe in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise PostgresUnavailable("running as root and neither a 'postgres' nor a 'nobody' user "
                              "exists to run PostgreSQL as (it refuses root)")


@contextmanager
def temporary_postgres(timeout: float = 60.0) -> Iterator[str]:
    """Start a throwaway PostgreSQL server; yield its URL (``postgresql+psycopg://...``).

    Raises
    ------
    PostgresUnavailable
        No server binaries are found, or the server does not start (with its log's tail).
    """
    folder_bin = find_postgres_bin()
    if folder_bin is None:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH, in "
            "/usr/lib/postgresql/*/bin or from the 'pgserver' package; run "
            "scripts/postgres.sh (apt-get install postgresql as root, else pip install "
            "pgserver) or set MIAUDIT_TEST_POSTGRES_URL")
    who = _server_user()
    # as root, a folder the server's user can reach ($TMPDIR may be under /root)
    base = Path(tempfile.mkdtemp(prefix="miaudit-pg-", dir="/tmp" if who is not None and
                                 os.path.isdir("/tmp") else None))
    data, log = base / "data", base / "server.log"
    kwargs: dict = {"capture_output": True, "text": True, "timeout": timeout,
                    "env": {**os.environ, "LC_ALL": "C", "LANG": "C"}}
    if who is not None:
        os.chown(base, *who)
        kwargs.update(user=who[0], group=who[1], extra_groups=[])
    started = False
    try:
        init = subprocess.run([str(folder_bin / "initdb"), "-D", str(data), "-U", SUPERUSER,
                               "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"],
                              check=False, **kwargs)
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {(init.stderr or init.stdout).strip()}")
        for _attempt in range(3):
            port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off "
                       "-c max_connections=60 -c shared_buffers=16MB")
            start = subprocess.run([str(folder_bin / "pg_ctl"), "-D", str(data), "-l", str(log),
                                    "-w", "-t", str(int(timeout)), "-o", options, "start"],
                                   check=False, **kwargs)
            if start.returncode == 0:
                started = True
                break
        if not started:
            tail = log.read_text(errors="replace")[-600:] if log.exists() else start.stderr
            raise PostgresUnavailable(f"pg_ctl start failed: {tail.strip()}")
        url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}"
        _create_database(f"{url}/postgres", DATABASE)
        yield f"{url}/{DATABASE}"
    finally:
        if started:
            subprocess.run([str(folder_bin / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "-w", "stop"], check=False, **kwargs)
        shutil.rmtree(base, ignore_errors=True)


def _create_database(url: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()


def record_runs_worker(url: str, run_dirs: list[str], repeats: int, barrier, results) -> None:
    """Record each run folder ``repeats`` times into the registry at ``url``, starting when
    every worker has passed ``barrier``; put the run IDs (or the error) on ``results``.

    A module-level function, so that ``multiprocessing`` (spawn) can start it in a test of
    concurrent writers.
    """
    from miaudit.registry.core import Registry

    try:
        reg = Registry(url)  # migrates on first use, after the barrier: all at once
        barrier.wait(timeout=120)
        ids = [reg.record_run_dir(d) for _ in range(repeats) for d in run_dirs]
        reg.close()
        results.put(("ok", ids))
    except BaseException as exc:  # reported to the parent, which fails the test
        results.put(("error", f"{type(exc).__name__}: {exc}"))
