#!/bin/sh
# Make a separate virtual environment .venv-kserve with the KServe Python model server, used
# by tests/test_kserve_real.py to audit a real Open Inference Protocol (v2) server through
# `miaudit run --protocol kserve-v2`. KServe lives apart from .venv because installing it
# there would downgrade pandas and protobuf; the test runs its server script
# (tests/servers/kserve_model.py) with .venv-kserve/bin/python.
#
#   1. .venv-kserve/.installed newer than this script: nothing to do;
#   2. otherwise: PYTHON -m venv .venv-kserve, pip install the pinned kserve and numpy.
#
# Never fails: where the install does not work it says so, and the KServe tests skip.
# Usage: scripts/kserve-venv.sh [PYTHON]   (default python3)
set -u
PY="${1:-python3}"
VENV="$(cd "$(dirname "$0")/.." && pwd)/.venv-kserve"
STAMP="$VENV/.installed"
# The versions tests/test_kserve_real.py was written against.
PACKAGES="kserve==0.21.0 numpy==2.4.6"

if [ -f "$STAMP" ] && [ ! "$0" -nt "$STAMP" ] && "$VENV/bin/python" -c "import kserve" \
        >/dev/null 2>&1; then
    echo "kserve-venv.sh: .venv-kserve is up to date"
    exit 0
fi

fail() {
    echo "kserve-venv.sh: $1; the KServe tests (tests/test_kserve_real.py) will be skipped" >&2
    exit 0
}

echo "kserve-venv.sh: installing $PACKAGES into $VENV (a minute or two)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" || fail "'$PY -m venv $VENV' failed"
# shellcheck disable=SC2086  # PACKAGES is a list of words
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $PACKAGES ||
    fail "pip install $PACKAGES failed"
"$VENV/bin/python" -c "import kserve" || fail "kserve does not import in $VENV"
touch "$STAMP"
echo "kserve-venv.sh: $VENV ready ($("$VENV/bin/python" -c 'from importlib.metadata import \
version as v; print("kserve", v("kserve"), "numpy", v("numpy"))'))"
exit 0
