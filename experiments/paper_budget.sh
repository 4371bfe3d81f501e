#!/usr/bin/env bash
# The paper-budget study (issue "When do CTR-generated prompts transfer?") in one command:
#   1. configs/paper_budget.yaml: DCNv2 (10 seeds), two 20-epoch PA-MLM runs (A: CTR part at lr 1e-3; B:
#      the paper's lr 5e-5 for all parts, batch 1024), ClickPrompt w/o PLM from each (10 paired seeds);
#   2. configs/paper_budget_with_plm.yaml: ClickPrompt with PLM from A (2 seeds);
#   3. the positive control (experiments/positive_control.sh);
#   4. experiments/results/paper_budget.md (python experiments/summarize_paper_budget.py), per-epoch
#      PA-MLM diagnostics included, the hardware named.
# On one H200 it is sized to finish in about 10 minutes. With the device tool, build the carried folder
# first (bash experiments/device/make_carry.sh: prepared ML-100K, the pinned transformers wheel, MiniLM
# in fp16) and run `bash experiments/paper_budget.sh` there with carry [".carry"]: the script installs the
# wheel, reads everything from .carry/ and writes runs and a results tarball under $OUT (or runs/).
# On a CPU: SCALE=cpu cuts the PA-MLM to PRETRAIN_EPOCHS (default 1) epochs and the with-PLM finetuning to
# one epoch; the summary states the cut. Finished runs are reused, so a killed run continues.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PY:-python3}
DATA=${DATA:-data/processed}
RESULTS=${RESULTS:-${OUT:-.}/runs}
if [ -d .carry ]; then  # the device machine: bring the pinned packages and the data along
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .carry/whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD/.carry:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  DATA=.carry/processed
fi
CP="$PY -m clickprompt.cli"
SCALE=${SCALE:-gpu}
read -r -a over <<< "${EXTRA:-}"  # e.g. EXTRA="--seeds 1 2" (a smoke run), applied to every experiment
if [ "$SCALE" = cpu ]; then
  e=${PRETRAIN_EPOCHS:-1}
  over+=(--set "pretrain/train.epochs=$e" --set "finetune-with-plm/train.epochs=1")
fi
stage() { echo "[paper-budget] $(date -u +%H:%M:%S) $*"; }
pack() { [ -n "${OUT:-}" ] && tar -czf "$OUT/paper_budget_runs.tgz" -C "$RESULTS" . 2>/dev/null || true; }
stage "1/4 DCNv2, PA-MLM A and B, w/o PLM ($SCALE budget)"
$CP experiment configs/paper_budget.yaml --dataset ml-100k --processed-dir "$DATA" --out "$RESULTS" --quiet "${over[@]}"
pack
stage "2/4 with PLM from A"
$CP experiment configs/paper_budget_with_plm.yaml --dataset ml-100k --processed-dir "$DATA" --out "$RESULTS" --quiet "${over[@]}"
pack
if [ -z "${SKIP_CONTROL:-}" ]; then
  stage "3/4 positive control"
  CP="$CP" OUT="$RESULTS/control" DATA="${CONTROL_DATA:-/tmp/control-data}" SEEDS="1 2 3 4 5" bash experiments/positive_control.sh
  pack
fi
stage "4/4 summary"
$PY experiments/summarize_paper_budget.py --out "$RESULTS" --scale "$SCALE" "${over[@]}" > experiments/results/paper_budget.md
cp experiments/results/paper_budget.md experiments/results/positive_control.md "${OUT:-/tmp}/" 2>/dev/null || true
pack
stage "done: experiments/results/paper_budget.md"
