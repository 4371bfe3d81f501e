#!/usr/bin/env bash
# Create .venv (Python 3.11) and install clickprompt with everything the demo, notebooks and tests use.
# torch is pinned to 2.13.0 (a CPU wheel; an unpinned torch would pull a multi-GB CUDA build).
# Chromium for the browser test (tests/test_browser.py) comes from the system's package manager (apt)
# when it is missing and apt-get is there; Playwright never downloads a browser here.
# CLICKPROMPT_SKIP_CHROMIUM=1 leaves it out.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.clickprompt-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[test,app,notebooks,tensorboard]"
  .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
  touch "$stamp"
fi
if [ -z "${CLICKPROMPT_SKIP_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 \
    && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
  fi
  if [ "$SUDO" != "none" ]; then
    echo "[setup] installing Debian's chromium for the browser test (apt-get, once) ..."
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends chromium; } >/tmp/clickprompt-apt.log 2>&1; then
      echo "[setup] could not install chromium (see /tmp/clickprompt-apt.log): the browser test skips outside CI"
    fi
  else
    echo "[setup] chromium missing and no root/sudo to install it: the browser test skips outside CI"
  fi
fi
