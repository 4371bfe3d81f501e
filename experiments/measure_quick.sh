#!/usr/bin/env bash
# Issue 19: time the README's main job (`clickprompt quick`, both acts) on this machine and write
# experiments/results/quick.md: wall time, peak memory, CPU, load before/after, then the job's own summary.
#   bash experiments/measure_quick.sh            # runs it (~10 min on 2 cores); best on an otherwise idle machine
#   LOG=logs/quick_measure.log OUT=runs/quick-measure bash experiments/measure_quick.sh   # format an earlier run's log
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/quick-measure}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ -z "${LOG:-}" ]; then
  LOG=logs/quick_measure.log; mkdir -p logs
  rm -rf "$OUT" data/processed/control-quick  # everything the job makes, made again (the control data too)
  { echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    /usr/bin/time -v .venv/bin/clickprompt quick --dataset ml-100k --profile quick --out "$OUT"
    echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"; } > "$LOG" 2>&1
fi
wall=$(grep -m1 "Elapsed (wall clock)" "$LOG" | awk '{print $NF}')
rss_kb=$(grep -m1 "Maximum resident set size" "$LOG" | awk '{print $NF}')
cpu_pct=$(grep -m1 "Percent of CPU this job got" "$LOG" | awk '{print $NF}')
{
  echo "# The main job, \`clickprompt quick\` (the README's first command after set-up)"
  echo
  echo "Command: \`bash experiments/measure_quick.sh\`, i.e. \`/usr/bin/time -v clickprompt quick --dataset ml-100k --profile quick --out $OUT\`"
  echo "with nothing prepared for the control act and no finished run to reuse (ML-100K prepared beforehand by \`clickprompt data prepare ml-100k\`)."
  echo
  echo "| machine | CPU | cores | wall time | peak memory (max RSS) | CPU use | load before / after |"
  echo "|---|---|---|---|---|---|---|"
  echo "| $(uname -n) | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') | $(nproc) | $wall (m:ss) | $(awk "BEGIN{printf \"%.2f GiB\", $rss_kb/1048576}") | $cpu_pct | $(grep -m1 'load before' "$LOG" | cut -d: -f2 | sed 's/^ *//') / $(grep -m1 'load after' "$LOG" | cut -d: -f2 | sed 's/^ *//') |"
  echo
  echo "Targets (issue 19): whole job <= 10 min and <= 4 GiB peak on 2 cores. Per-stage wall times are in the tables."
  echo
  echo "## The job's own summary (\`$OUT/summary.md\`, copied)"
  echo
  sed 's/^# /### /; s/^## /### /' "$OUT/summary.md"
} > experiments/results/quick.md
echo "wrote experiments/results/quick.md"
