#!/usr/bin/env bash
# System packages the test suite needs beyond PyPI: Debian's Chromium, for the test that opens an
# HTML report in a real headless browser. Installs only what is missing; uses sudo when not root.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
command -v chromium
