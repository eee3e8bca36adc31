#!/usr/bin/env bash
# README command 2: set up, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# system packages the deployment tests need: PostgreSQL 15's server (the stack test starts one)
# and Chromium (the MLflow UI test drives it through Playwright; no browser download)
missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "[test] installing ${missing[*]} (apt-get)"
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
bash scripts/setup.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
