#!/usr/bin/env bash
# Issue 15: the PLM-based baselines of Table 2 (CTR-BERT, PTab, CTRL; P5 listed as not run) on ML-100K with
# MiniLM-L6 on the CPU budget of experiments/ml100k_baselines.yaml, beside DCNv2 and AutoInt from scratch;
# then Table 8's latency per batch of 128 and the report. Results: experiments/results/ml100k_baselines.md.
#
#   bash experiments/ml100k_baselines.sh            # runs what is missing (finished runs are reused,
#                                                   # interrupted ones resume), ~2 h of one CPU thread
#   STEP=latency bash experiments/ml100k_baselines.sh   # only the latency table (runs must exist)
#
# ClickPrompt's rows come from the quick profile's Table 2 arms, run separately into the same --out:
#   clickprompt experiment configs/table2_overall.yaml --dataset ml-100k --profile quick --seeds 1 2 3 --out runs/ml100k-baselines
set -euo pipefail
cd "$(dirname "$0")/.."
CP="${CP:-.venv/bin/clickprompt}"
OUT="${OUT:-runs/ml100k-baselines}"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
if [ "${STEP:-all}" = all ]; then
  # seed by seed (the run directories are the 3-seed plan's), so an interrupted study holds whole seeds
  for s in ${SEEDS:-1 2 3}; do
    $CP experiment experiments/ml100k_baselines.yaml --dataset ml-100k --out "$OUT" --seeds $s --resume --quiet
  done
  $CP experiment experiments/ml100k_baselines.yaml --dataset ml-100k --out "$OUT" --summary-only --quiet
fi
