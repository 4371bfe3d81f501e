#!/usr/bin/env bash
# The positive control (issue "When do CTR-generated prompts transfer?"), end to end on a CPU:
#   1. three synthetic datasets where only word meanings explain the clicks (clickprompt data synth):
#      control-cold (new test items), control-heldout (new items titled with words never seen in a
#      training title), control-rare (test items seen 1-3 times in training);
#   2. configs/positive_control.yaml on cold (DCNv2 vs ClickPrompt with MiniLM, 5 seeds) and heldout (3
#      seeds), configs/pa_mlm_transfer.yaml on rare (one PA-MLM run, then w/o PLM, 5 finetuning seeds);
#   3. experiments/results/positive_control.md from the run directories.
# Finished runs are reused (same settings), so a killed script continues where it stopped.
# About an hour on 2 idle CPU cores; SUMMARY_ONLY=1 rebuilds the summary alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}  # the set-up's venv when there is one
CP=${CP:-$PY -m clickprompt.cli}
OUT=${OUT:-runs/control}
DATA=${DATA:-data/processed}
SEEDS=${SEEDS:-1 2 3 4 5}
SEEDS_HELDOUT=${SEEDS_HELDOUT:-1 2 3}  # the held-out-words variant: fewer seeds (each with-PLM run is minutes)
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

synth() {  # name, extra options (the same options always give the same bytes, so an existing one is kept)
  local name=$1; shift
  [ -f "$DATA/$name/control.json" ] || $CP data synth --out "$DATA/$name" "$@"
}
if [ -z "${SUMMARY_ONLY:-}" ]; then
  synth control-cold --item-mode cold
  synth control-heldout --item-mode cold --heldout-words 0.5
  synth control-rare --item-mode rare
  $CP experiment configs/positive_control.yaml --dataset control-cold --processed-dir "$DATA" --out "$OUT" --seeds $SEEDS --quiet --resume
  $CP experiment configs/pa_mlm_transfer.yaml --dataset control-rare --processed-dir "$DATA" --out "$OUT" --seeds $SEEDS --quiet --resume
  $CP experiment configs/positive_control.yaml --dataset control-heldout --processed-dir "$DATA" --out "$OUT" --seeds $SEEDS_HELDOUT --quiet --resume
fi
$PY experiments/summarize_control.py --out "$OUT" --processed-dir "$DATA" \
  --run "positive_control:control-cold:$SEEDS" --run "pa_mlm_transfer:control-rare:$SEEDS" \
  --run "positive_control:control-heldout:$SEEDS_HELDOUT" > experiments/results/positive_control.md
echo "summary: experiments/results/positive_control.md"
