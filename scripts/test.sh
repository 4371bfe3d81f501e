#!/usr/bin/env bash
# The whole test suite from a clean clone: set up .venv, then pytest (unit tests, the real ML-100K
# pipeline tests, and the notebooks through nbval).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python -m pytest -q "$@"
