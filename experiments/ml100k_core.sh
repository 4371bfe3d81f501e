#!/usr/bin/env bash
# Issue 5's core comparison on ML-100K with minilm-l6 and DCNv2 (the commands behind
# experiments/results/ml100k_core.md). CPU budget: see the results file.
#
#   bash experiments/ml100k_core.sh                       # 1 PA-MLM epoch, pretraining seed 1
#   OUT=runs/ml100k-core-3ep PRETRAIN_EPOCHS=3 PRETRAIN_SEEDS="1 2" bash experiments/ml100k_core.sh
#
# Each pretraining seed's chain (pretrain -> 10 w/o-PLM finetunes -> with-PLM finetune) is independent,
# so two invocations with PRETRAIN_SEEDS=1 and PRETRAIN_SEEDS=2 (OMP_NUM_THREADS=1 each) can run side
# by side on 2 cores. Finished runs (results.json present) are skipped; interrupted ones resume.
set -euo pipefail
cd "$(dirname "$0")/.."
CP="${CP:-.venv/bin/clickprompt}"
OUT="${OUT:-runs/ml100k-core}"
SEEDS_CTR="1 2 3 4 5 6 7 8 9 10"
# 1. DCNv2 from scratch, 10 seeds (App. B.1 protocol: up to 10 epochs, early stopping on valid AUC).
$CP train-ctr --profile quick --dataset ml-100k --model dcnv2 --seeds $SEEDS_CTR --out $OUT/dcnv2 --quiet
for s in ${PRETRAIN_SEEDS:-1}; do
  # 2. PA-MLM pretraining (Sec 3.5.1): K=5 layer-wise prompts, batch 128, CTR part lr 1e-3, PLM lr 5e-5,
  #    5% warmup then linear decay, fp32 (this CPU has no AMX: bf16 matrix products are slower than fp32).
  $CP pretrain --profile quick --dataset ml-100k --seeds $s --out $OUT/pretrain-seed$s \
    --set train.epochs=${PRETRAIN_EPOCHS:-1} --set train.max_steps=null --set train.batch_size=128 \
    --set train.save_every=100 --set train.log_every=20 --resume
  # 3. ClickPrompt w/o PLM (Eq. 10) from this pretraining seed, the same 10 finetuning seeds as DCNv2.
  wo="$OUT/without-plm"; [ "$s" = 1 ] || wo="$OUT/without-plm-pretrain$s"
  $CP finetune --profile quick --dataset ml-100k --without-plm --pretrained $OUT/pretrain-seed$s/seed-$s \
    --seeds $SEEDS_CTR --out $wo --quiet
  # 4. ClickPrompt with PLM (Eq. 9): 1 epoch, PLM frozen (plm_lr 0, one of the paper's choices).
  wp="$OUT/with-plm"; [ "$s" = 1 ] || wp="$OUT/with-plm-pretrain$s"
  for f in ${WITH_PLM_SEEDS:-1}; do
    $CP finetune --profile quick --dataset ml-100k --pretrained $OUT/pretrain-seed$s/seed-$s --seeds $f \
      --out $wp --set train.max_steps=null --set train.epochs=1 --set train.batch_size=128 --resume
  done
done
