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
# The embedded model's llama-cpp-python builds from source (~8 min on 2 cores, once). Built for this CPU
# (GGML_NATIVE, its default) it crashed on every prompt of more than one token on CPUs with AMX, and a
# wheel pip cached from such a build is reused whatever CMAKE_ARGS say: so a portable build, uncached.
if ! .venv/bin/python -c "import llama_cpp" >/dev/null 2>&1; then
  CMAKE_ARGS="-DGGML_NATIVE=OFF" run .venv/bin/python -m pip install --disable-pip-version-check --no-cache-dir \
    'llama-cpp-python[server]>=0.3.7'
fi
run .venv/bin/python -m pip install --disable-pip-version-check -e '.[dev,local]'
# Debian's Chromium for JavaScript rendering (playwright cannot download its own browsers here)
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    run apt-get update -qq
    DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq chromium
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    run sudo apt-get update -qq
    run sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    echo "note: Chromium is not installed; rendering (swarm crawl --render) needs: apt-get install chromium" >&2
  fi
fi
echo "installed persona-swarm into .venv ($(.venv/bin/swarm --help >/dev/null && echo ok))"
