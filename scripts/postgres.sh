#!/bin/sh
# Make PostgreSQL server binaries (initdb, pg_ctl, postgres) available for the registry's
# tests. The tests start their own throwaway server in a temporary folder
# (miaudit.registry.testing.temporary_postgres); nothing is started or configured here.
#
#   1. found on PATH or in /usr/lib/postgresql/*/bin: nothing to do;
#   2. root (or passwordless sudo) with apt-get: apt-get install postgresql;
#   3. otherwise: pip install pgserver (PostgreSQL binaries in a wheel) into the venv.
#
# Never fails: where nothing works it says so, and the PostgreSQL tests skip with the reason.
# Usage: scripts/postgres.sh [PYTHON]   (default .venv/bin/python)
set -u
PY="${1:-.venv/bin/python}"

found() {
    command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1 && return 0
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && return 0
    done
    "$PY" -c "import pgserver" >/dev/null 2>&1
}

if found; then
    echo "postgres.sh: PostgreSQL server binaries found"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
fi
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; }; then
    echo "postgres.sh: installing Debian's postgresql package"
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
           --no-install-recommends postgresql >/dev/null; then
        found && exit 0
    fi
    echo "postgres.sh: apt-get install postgresql failed; trying pgserver from PyPI" >&2
fi

echo "postgres.sh: installing PostgreSQL binaries from PyPI (pgserver)"
if "$PY" -m pip install --quiet 'pgserver>=0.1.4' && found; then
    exit 0
fi
echo "postgres.sh: could not install PostgreSQL; the PostgreSQL tests will skip" \
     "(or set MIAUDIT_TEST_POSTGRES_URL to a database of your own)" >&2
exit 0
