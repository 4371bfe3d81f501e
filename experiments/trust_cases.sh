#!/usr/bin/env bash
# Issue 13's cases, run as a user meets them: each command, the lines it prints that matter, its exit code.
# Needs ML-100K prepared (data/processed/ml-100k) and the packaged MiniLM. Works in a scratch folder:
#   bash experiments/trust_cases.sh [SCRATCH]        (default /tmp/clickprompt-trust)
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
W=${1:-/tmp/clickprompt-trust}
rm -rf "$W" && mkdir -p "$W" && cd "$W"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
CP=${CP:-$REPO/.venv/bin/clickprompt}
PD="--processed-dir $REPO/data/processed"
T="--dataset ml-100k $PD --profile tiny --quiet"
Q="--dataset ml-100k $PD --profile quick --quiet"
c() {  # run, show the command without the long paths, the meaningful lines and the exit code
  echo "\$ clickprompt ${*}" | sed "s#$PD##; s#--dataset ml-100k##; s#  *# #g"
  out=$("$CP" "$@" 2>&1); rc=$?
  echo "$out" | grep -E "^(error|note|warning)|AUC|^(ok|damaged|stale|unfinished|running|not-a-run) " | tail -6 | sed 's/^/    /'
  echo "    [exit $rc]"
}
echo "## a finished --out is reused only for equal settings"
c train-ctr $T --model dcnv2 --set train.seed=0 --out runs/dcnv2
c train-ctr $T --model fm --set train.seed=99 --out runs/dcnv2
c train-ctr $T --model dcnv2 --set train.seed=0 --out runs/dcnv2
echo "## two writers on one --out; then the dead writer's lock"
"$CP" train-ctr $Q --out runs/w >/dev/null 2>&1 & P=$!
sleep 6
c train-ctr $Q --out runs/w
kill -9 $P; wait $P 2>/dev/null
c train-ctr $T --out runs/w --force
echo "## settings validated before anything is written"
for s in train.epochs=0 train.batch_size=-4 train.lr=nan train.device=tpu train.device=cuda; do c train-ctr $T --set $s --out runs/v; done
c finetune $T --set train.plm_lr=-1 --out runs/v
c finetune $T --plm no-such-plm --out runs/v
echo "    runs/v exists afterwards: $([ -e runs/v ] && echo yes || echo no)"
echo "## damaged checkpoints"
cp -r runs/dcnv2 runs/zeroed; python3 -c "f=open('runs/zeroed/best/model.safetensors','r+b'); f.seek(2048); f.write(bytes(4096))"
cp -r runs/dcnv2 runs/truncated; truncate -s 1000 runs/truncated/best/model.safetensors
cp -r runs/dcnv2 runs/emptied; : > runs/emptied/best/model.safetensors
cp -r runs/dcnv2 runs/garbage; head -c 196044 /dev/urandom > runs/garbage/best/model.safetensors
cp -r runs/dcnv2 runs/badconfig; echo '{"broken' > runs/badconfig/best/config.json
for r in zeroed truncated emptied garbage badconfig; do c evaluate runs/$r; done
c runs verify runs/dcnv2 runs/zeroed runs/truncated runs/badconfig runs/w
c runs verify runs/nothing
echo "## a truncated trainer state under --resume"
"$CP" train-ctr $Q --set train.save_every=20 --out runs/r >/dev/null 2>&1 & P=$!
for _ in $(seq 200); do [ -f runs/r/state/trainer.safetensors ] && break; sleep 0.1; done
kill -9 $P; wait $P 2>/dev/null
truncate -s 500 runs/r/state/trainer.safetensors
c train-ctr $Q --set train.save_every=20 --out runs/r --resume
echo "## the pretraining run fixes the architecture; a truncated --pretrained checkpoint"
c pretrain $T --num-prompts 2 --out runs/pre
c finetune $T --pretrained runs/pre --num-prompts 7 --out runs/ft7
cp -r runs/pre runs/pre-bad; truncate -s 2000 runs/pre-bad/best/model.safetensors
c finetune $T --pretrained runs/pre-bad --out runs/ft-bad
echo "## a YAML value equal to a default is kept (tiny profile: plm_lr 0.001, epochs 1; YAML: the defaults 5e-5, 10)"
printf 'train: {plm_lr: 0.00005, epochs: 10}\n' > y.yaml
"$REPO/.venv/bin/python" -c "
from clickprompt.config import load_stage_config
c = load_stage_config('tiny', 'finetune-with-plm', 'y.yaml')
print('    resolved train.plm_lr =', c.train.plm_lr, ', train.epochs =', c.train.epochs)"
echo "## prepare"
mkdir -p p/ml-100k.tmp-4242 && echo partial > p/ml-100k.tmp-4242/train.parquet
c data prepare ml-100k --raw "$REPO/data/raw/ml-100k" --out p/ml-100k
echo hi > afile
c data prepare ml-100k --raw "$REPO/data/raw/ml-100k" --out afile
c data prepare ml-100k --raw "$REPO/data/raw/ml-100k" --out afile --force
mkdir -p raw/r && printf 'user,item,rating,ts\n' > raw/r/r.csv
printf 'name: my-table\nfile: r.csv\nlabel: rating\nthreshold: 4\ntimestamp: ts\nfields: {user: User, item: Item}\n' > raw/r/schema.yaml
c data prepare table --raw raw/r --out p/t
