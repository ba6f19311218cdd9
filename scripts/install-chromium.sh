#!/usr/bin/env sh
# Install Debian's headless-capable Chromium, used by tests/test_report.py to screenshot
# report.html with networking blocked. Safe to re-run; does nothing when already present.
set -eu

if command -v chromium >/dev/null 2>&1; then
    echo "chromium already installed: $(command -v chromium)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: apt-get not found; install Chromium with your package manager" \
         "(the report screenshot test is skipped without it)." >&2
    exit 0
fi

if [ "$(id -u)" = "0" ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "install-chromium: not root and no password-less sudo; run" \
         "'sudo apt-get install -y --no-install-recommends chromium' yourself" \
         "(the report screenshot test is skipped without it)." >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium
echo "chromium installed: $(command -v chromium)"
