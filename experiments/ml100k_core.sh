#!/usr/bin/env bash
# Issue 5's core comparison on ML-100K with minilm-l6 and DCNv2 (the commands behind
# experiments/results/ml100k_core.md). CPU budget: see the results file.
set -euo pipefail
cd "$(dirname "$0")/.."
CP=".venv/bin/clickprompt"
OUT=runs/ml100k-core
SEEDS_CTR="1 2 3 4 5 6 7 8 9 10"
# 1. PA-MLM pretraining (Sec 3.5.1): K=5 layer-wise prompts, batch 128, CTR part lr 1e-3, PLM lr 5e-5,
#    5% warmup then linear decay, fp32 (this CPU has no AMX: bf16 matrix products are slower than fp32).
for s in ${PRETRAIN_SEEDS:-1}; do
  $CP pretrain --profile quick --dataset ml-100k --seeds $s --out $OUT/pretrain-seed$s \
    --set train.epochs=${PRETRAIN_EPOCHS:-1} --set train.max_steps=null --set train.batch_size=128 \
    --set train.save_every=100 --set train.log_every=20 --resume
done
# 2. DCNv2 from scratch and ClickPrompt w/o PLM (Eq. 10), 10 seeds each, same protocol (App. B.1).
$CP train-ctr --profile quick --dataset ml-100k --model dcnv2 --seeds $SEEDS_CTR --out $OUT/dcnv2 --quiet
$CP finetune --profile quick --dataset ml-100k --without-plm --pretrained $OUT/pretrain-seed1/seed-1 \
  --seeds $SEEDS_CTR --out $OUT/without-plm --quiet
# 3. ClickPrompt with PLM (Eq. 9): 1 epoch, PLM frozen (plm_lr 0, one of the paper's choices).
for s in ${WITH_PLM_SEEDS:-1}; do
  $CP finetune --profile quick --dataset ml-100k --pretrained $OUT/pretrain-seed1/seed-1 --seeds $s \
    --out $OUT/with-plm --set train.max_steps=null --set train.epochs=1 --set train.batch_size=128 --resume
done
