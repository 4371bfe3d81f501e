#!/usr/bin/env bash
# Issue 6's ML-100K experiment results with minilm-l6 at the CPU quick profile (the commands behind
# experiments/results/ml100k_ablations.md): Table 5 (fusion ablation) and Table 4 (prompt strategy)
# with DCNv2, and Table-3-style rows (N/A, w/o PLM, with PLM) for DNN and AutoInt; 3 seeds each.
# Run directories are content-addressed under $OUT, so a run two tables share (the layer-wise PA-MLM
# of Tables 4 and 5) is made once. Finished runs are reused, interrupted ones resume.
#
# Seeds run one at a time over all tables (seed 1 of every table, then seed 2, ...), so a partial run
# still gives every table; each table's summary covers the seeds finished so far, and the summaries
# are gathered into experiments/results/ml100k_ablations.md.
#   bash experiments/ml100k_ablations.sh                  # run what is missing, then summarise
#   SUMMARY_ONLY=1 bash experiments/ml100k_ablations.sh   # only rebuild the summaries
set -euo pipefail
cd "$(dirname "$0")/.."
CP="${CP:-.venv/bin/clickprompt}"
OUT="${OUT:-runs/exp}"
SEEDS="${SEEDS:-1 2 3}"
RESULTS="${RESULTS:-experiments/results/ml100k_ablations.md}"
TABLES=(
  "configs/table5_fusion_ablation.yaml --set ctr.model=dcnv2"
  "configs/table4_prompt_strategy.yaml --set ctr.model=dcnv2"
  "configs/table3_compat.yaml --set ctr.model=dnn --set plm.name=minilm-l6"
  "configs/table3_compat.yaml --set ctr.model=autoint --set plm.name=minilm-l6"
)
experiment() { $CP experiment "$@" --dataset ml-100k --profile quick --out "$OUT" --quiet; }
if [ -z "${SUMMARY_ONLY:-}" ]; then
  for s in $SEEDS; do
    for t in "${TABLES[@]}"; do experiment $t --seeds $s --resume; done
  done
fi
# Summaries over the seeds every run of a table has finished (a table with none is left out).
{
  echo "# Issue 6 on ML-100K: Tables 4 and 5 with DCNv2, Table-3 rows for DNN and AutoInt (minilm-l6, quick profile)"
  echo
  echo "Command: \`bash experiments/ml100k_ablations.sh\` (seeds one at a time over all tables; finished runs reused)."
  echo "Budget: 2 CPU cores, no GPU, the quick profile (\`clickprompt/profiles/quick.yaml\`): PA-MLM 100 steps"
  echo "of batch 64 (~11% of one epoch), finetuning with the PLM 60 steps of batch 128, PLM frozen; CTR-only"
  echo "stages up to 10 epochs with early stopping. A smoke-scale budget, not the paper's (20 PA-MLM epochs)."
  echo
  for t in "${TABLES[@]}"; do
    done_seeds=""
    for s in $SEEDS; do
      plan=$(experiment $t --seeds $s --dry-run)
      if grep -q "^  todo" <<< "$plan"; then break; fi
      done_seeds="$done_seeds $s"
    done
    [ -n "$done_seeds" ] || { echo "_Not run yet: \`$t\`._"; echo; continue; }
    echo "## \`${t%%.yaml*}.yaml\`${t#*.yaml}, seeds$done_seeds"
    echo
    echo "\`clickprompt experiment $t --dataset ml-100k --profile quick --seeds$done_seeds --out $OUT\`"
    echo
    experiment $t --seeds $done_seeds --summary-only | sed -n '/^# /,$p' | sed '/^summary: /d' | sed -E 's/^(#+) /\1## /'
    echo
  done
} > "$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
echo "wrote $RESULTS"
