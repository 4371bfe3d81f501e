"""PA-MLM diagnostics: does the PLM read the CTR model's prompts, and does pretraining generalise?

Computed after every pretraining epoch (clickprompt.pipeline.pretrain writes them to metrics.jsonl); the
kept epoch's values go to results.json:

    valid_mlm_loss            LM loss on a fixed validation subset (fixed masks), eval mode: the monitor
    train_eval_mlm_loss       the same on a fixed TRAINING subset, eval mode (comparable with the above)
    generalisation_gap        valid_mlm_loss - train_eval_mlm_loss: > 0 when the ID embeddings memorise
                              each training row's text instead of learning what transfers
    value_token_acc_{true,shuffled,none}   masked value-token accuracy with the sample's own prompts,
                              another sample's prompts, and none (`masked_value_accuracy`): true well
                              above shuffled = the PLM reads the prompts

(`mlm` reads `clm` for decoder-only PLMs, App. C.3.)
"""

from __future__ import annotations

import numpy as np
import torch

from clickprompt.config import RunConfig
from clickprompt.data.dataset import Split
from clickprompt.training import autocast, autocast_dtype, to_device

DIAGNOSTIC_ROWS = 1024  # rows of each fixed subset, measured after every epoch
VALUE_ACCURACY = tuple(f"value_token_acc_{m}" for m in ("true", "shuffled", "none"))


@torch.no_grad()
def lm_loss(model, make_batch, rows: np.ndarray, precision: str, batch_size: int = 256) -> float:
    """Mean LM loss of a pretraining model over `rows`, in eval mode (masks are hashed: no RNG drawn)."""
    device = next(model.parameters()).device
    dtype = autocast_dtype(precision, device)
    was_training = model.training
    model.eval()
    total, weight = 0.0, 0
    for s in range(0, len(rows), batch_size):
        idx = rows[s : s + batch_size]
        batch = to_device(make_batch(idx), device)
        with autocast(device, dtype):
            total += float(model(**batch)["loss"]) * len(idx)
        weight += len(idx)
    model.train(was_training)
    return total / max(weight, 1)


@torch.no_grad()
def masked_value_accuracy(model, split: Split, cache, tokenizer, cfg: RunConfig, n: int = 2048, seed: int = 0) -> dict:
    """Masked-token accuracy on value tokens (not field names, "is", "."), with the true prompts, with
    prompts shuffled across the batch, and with no prompts: the evidence that the PLM reads them.
    15% of each sample's value tokens are replaced by the mask token, with a fixed seed. For a
    decoder-only PLM (PA-CLM) it is the next-token accuracy on every value token instead, given the
    text before it. For BART the decoder reads the uncorrupted text (as in pretraining)."""
    from clickprompt.masking import mask_tokens

    clm = model.core.plm.objective == "clm"
    cache = getattr(cache, "host", cache)  # a DeviceTokenCache's host arrays: this read-out builds its own masks

    device = next(model.parameters()).device
    dtype = autocast_dtype(cfg.train.precision, device)
    rows = np.random.default_rng(seed).permutation(len(split))[:n]
    gen = torch.Generator().manual_seed(seed)
    hits = {"true": 0, "shuffled": 0, "none": 0}
    total = 0
    was_training = model.training
    model.eval()
    for start in range(0, len(rows), 256):
        idx = rows[start : start + 256]
        tok = cache.assemble(split.text_index[idx], with_fields=True)
        input_ids = torch.from_numpy(tok["input_ids"])
        attention = torch.from_numpy(tok["attention_mask"])
        special = torch.from_numpy((tok["token_field"] < 0) & (tok["attention_mask"] == 1))
        if clm:  # the state before each value token predicts it
            masked, where = input_ids, torch.from_numpy(tok["value_mask"])[:, 1:]  # (B, Z - 1)
            labels = input_ids[:, 1:].masked_fill(~where, -100)
        else:
            masked, labels = mask_tokens(
                input_ids, attention, special, tokenizer.mask_token_id, len(tokenizer), prob=0.15, generator=gen,
                special_ids=list(tokenizer.all_special_ids), eligible_mask=torch.from_numpy(tok["value_mask"]),
                mask_ratio=1.0, random_ratio=0.0,
            )
            where = labels.ne(-100)
        total += int(where.sum())
        ids = torch.from_numpy(split.ids[idx]).to(device)
        for mode in hits:
            with autocast(device, dtype):
                _, hidden = model.core(ids, masked.to(device), attention.to(device), prompt_mode=mode,
                                       target_ids=input_ids.to(device) if model.core.plm.is_encoder_decoder else None)
                logits = model.core.plm.mlm_logits(hidden[:, :-1] if clm else hidden, where.to(device))
            hits[mode] += int((logits.argmax(-1).cpu() == labels[where]).sum())
    model.train(was_training)
    return {f"value_token_acc_{m}": hits[m] / max(total, 1) for m in hits} | {"masked_value_tokens": total}


def pretraining_evaluator(train_batches, valid_batches, n_train: int, valid: Split, cache, tokenizer, cfg: RunConfig,
                          objective: str, rows: int = DIAGNOSTIC_ROWS):
    """The per-epoch evaluation of PA-MLM (module docstring): `evaluate(model) -> dict` for training.train.
    `train_batches` / `valid_batches` must mask with fixed seeds (hashed masks) so epochs compare."""
    key = f"{objective}_loss"
    valid_rows = np.arange(min(len(valid), rows))
    train_rows = np.random.default_rng(0).permutation(n_train)[:rows]

    def evaluate(model) -> dict:
        valid_loss = lm_loss(model, valid_batches, valid_rows, cfg.train.precision)
        train_loss = lm_loss(model, train_batches, train_rows, cfg.train.precision)
        acc = masked_value_accuracy(model, valid, cache, tokenizer, cfg, n=rows)
        return {f"valid_{key}": valid_loss, f"train_eval_{key}": train_loss, "generalisation_gap": valid_loss - train_loss,
                **acc}

    return evaluate
