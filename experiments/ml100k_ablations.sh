#!/usr/bin/env bash
# Issue 6's ML-100K experiment results with minilm-l6 at the CPU quick profile (the commands behind
# experiments/results/ml100k_ablations.md): Table 5 (fusion ablation) and Table 4 (prompt strategy)
# with DCNv2, and Table-3-style rows (N/A, w/o PLM, with PLM) for DNN and AutoInt; 3 seeds each.
# Run directories are content-addressed under $OUT, so a run two tables share (the layer-wise PA-MLM
# of Tables 4 and 5) is made once. Finished runs are reused; `--summary-only` rebuilds the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
CP="${CP:-.venv/bin/clickprompt}"
OUT="${OUT:-runs/exp}"
SEEDS="${SEEDS:-1 2 3}"
run() { $CP experiment "$@" --dataset ml-100k --profile quick --seeds $SEEDS --out $OUT --quiet ${EXTRA:-}; }
run configs/table5_fusion_ablation.yaml --set ctr.model=dcnv2
run configs/table4_prompt_strategy.yaml --set ctr.model=dcnv2
for m in dnn autoint; do
  run configs/table3_compat.yaml --set ctr.model=$m --set plm.name=minilm-l6
done
