#!/usr/bin/env bash
# Installs everything persona-swarm needs into ./.venv (idempotent; a second run is quick).
# pip's output is shown only when something fails.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() {
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "install step failed: $*" >&2
    exit 1
  fi
}
if [ ! -x .venv/bin/python ]; then
  run "$python" -m venv .venv
fi
run .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip
run .venv/bin/python -m pip install --disable-pip-version-check -e '.[dev]'
echo "installed persona-swarm into .venv ($(.venv/bin/swarm --help >/dev/null && echo ok))"
