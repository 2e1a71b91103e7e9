#!/usr/bin/env bash
# System packages the test suite needs beyond PyPI, from Debian: Chromium, for the test that opens an
# HTML report in a real headless browser, and the PostgreSQL server, for the tests that run every
# store test against a throwaway PostgreSQL cluster (tests/pg_cluster.py). Installs only what is
# missing; uses sudo when not root.
set -euo pipefail

have_postgres_server() {
    command -v pg_ctl >/dev/null 2>&1 && return 0
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
have_postgres_server || missing+=(postgresql)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
command -v chromium
have_postgres_server
