"""Batches from in-memory arrays: `make_batch(indices) -> dict` functions for the training loop and
scoring (no per-sample Python in the hot loop).

    ctr_batcher(split)                        ids and labels (CTR models)
    text_batcher(split, cache, mlm=, clm=)    + the token-cache text view (Eq. 4); PA-MLM / PA-CLM inputs
    pretraining_batcher(split, cache, tok, objective, seed)   the pretraining batches of a PLM family
    scoring_batcher(config, tokenizer, ds)    the batches of any checkpoint that scores clicks
    predict_probs(model, config, tokenizer, ds, split)        click probabilities of a checkpoint on a split
"""

from __future__ import annotations

import numpy as np
import torch

from clickprompt.data.dataset import PreparedDataset, Split
from clickprompt.rundir import ModelKind


def ctr_batcher(split: Split):
    ids = torch.from_numpy(split.ids)
    labels = torch.from_numpy(split.labels)

    def make_batch(idx: np.ndarray) -> dict:
        t = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        return {"ids": ids[t], "labels": labels[t]}

    return make_batch


def text_batcher(split: Split, cache, *, mlm: dict | None = None, clm: bool = False):
    """Batches with ids, labels and the token-cache text view; with `mlm` (mask_token_id, vocab_size,
    special_ids, prob, seed) also PA-MLM inputs: masked input_ids and mlm_labels; with `clm` PA-CLM
    inputs: clm_labels = the text's ids, -100 at padding (App. C.3, decoder-only PLMs).

    Masking is dynamic and a pure function of (seed, epoch, sample index) (masking.hashed_uniforms):
    the training loop calls `make_batch.set_epoch(epoch)` at every epoch start, like PyTorch's
    DistributedSampler, so one process and N data-parallel processes mask every sample alike and a
    resumed run masks as the uninterrupted one did."""
    from clickprompt.data.text import DeviceTokenCache
    from clickprompt.masking import hashed_uniforms, mask_tokens

    ids = torch.from_numpy(split.ids)
    labels = torch.from_numpy(split.labels)
    text_index = split.text_index
    on_device = isinstance(cache, DeviceTokenCache)  # train.device_batches: gathered where the model runs
    if on_device:
        ids, labels, text_index = (torch.as_tensor(a).to(cache.device) for a in (split.ids, split.labels, text_index))
    as_tensor = (lambda a: a) if on_device else torch.from_numpy
    state = {"epoch": 0}

    def make_batch(idx: np.ndarray) -> dict:
        idx = np.asarray(idx, dtype=np.int64)
        t = torch.from_numpy(idx)
        if on_device:
            t = t.to(cache.device)
        tok = cache.assemble(text_index[t] if on_device else text_index[idx], with_fields=mlm is not None)
        batch = {
            "ids": ids[t],
            "labels": labels[t],
            "input_ids": as_tensor(tok["input_ids"]),
            "attention_mask": as_tensor(tok["attention_mask"]),
        }
        if mlm is not None:
            special = as_tensor((tok["token_field"] < 0) & (tok["attention_mask"] == 1))
            batch["input_ids"], batch["mlm_labels"] = mask_tokens(
                batch["input_ids"], batch["attention_mask"], special, mlm["mask_token_id"], mlm["vocab_size"],
                prob=mlm.get("prob", 0.15), special_ids=mlm["special_ids"],
                uniforms=hashed_uniforms(mlm.get("seed", 0), state["epoch"], idx, batch["input_ids"].shape[1]),
            )
            batch.pop("labels")
        elif clm:
            batch["clm_labels"] = batch["input_ids"].masked_fill(batch["attention_mask"].eq(0), -100)
            batch.pop("labels")
        return batch

    make_batch.set_epoch = lambda epoch: state.update(epoch=int(epoch))
    make_batch.lengths = cache.sample_lengths(split.text_index)  # train.group_by_length; predict sorts by it
    return make_batch


def mlm_settings(tokenizer, seed: int = 0) -> dict:
    if tokenizer.mask_token_id is None:
        raise ValueError("PA-MLM needs a tokenizer with a mask token (decoder-only PLMs use PA-CLM instead)")
    return {
        "mask_token_id": tokenizer.mask_token_id,
        "vocab_size": len(tokenizer),
        "special_ids": list(tokenizer.all_special_ids),
        "seed": seed,
    }


def pretraining_batcher(split: Split, cache, tokenizer, objective: str, seed: int = 0):
    """The pretraining batches of a PLM family: PA-MLM masking ("mlm") or causal-LM labels ("clm")."""
    if objective == "clm":
        return text_batcher(split, cache, clm=True)
    return text_batcher(split, cache, mlm=mlm_settings(tokenizer, seed))


def scoring_batcher(config: dict, tokenizer, ds: PreparedDataset):
    """(split -> make_batch) for a checkpoint of any kind that scores clicks: CTR ids, the two towers of
    CTR-BERT, or the token-cache text (ClickPrompt with PLM, PTab, P5)."""
    from clickprompt.config import RunConfig
    from clickprompt.data.text import TokenCache

    kind = ModelKind(config["kind"])
    if not kind.scores_clicks:
        raise ValueError(f"a {str(kind)!r} checkpoint makes no click predictions")
    if kind == ModelKind.CTR:
        return ctr_batcher
    if kind == ModelKind.CTR_BERT:
        from clickprompt.baselines.ctr_bert import batcher_for_checkpoint

        return batcher_for_checkpoint(config, tokenizer, ds)
    cache = TokenCache.for_dataset(tokenizer, ds, RunConfig.from_dict(config["run_config"]).data.max_length)
    return lambda split: text_batcher(split, cache)


def predict_probs(model, config: dict, tokenizer, ds: PreparedDataset, split_name: str, batch_size: int = 512,
                  rows: np.ndarray | None = None, dtype=None) -> np.ndarray:
    """Click probabilities of a checkpoint that scores clicks (scoring_batcher) on a split (or some of its
    rows); `dtype` (e.g. torch.bfloat16): score under autocast to it."""
    from clickprompt.training import predict

    split = ds.split(split_name)
    mb = scoring_batcher(config, tokenizer, ds)(split)
    if rows is None:
        rows = np.arange(len(split))
    logits = predict(model, lambda idx: mb(rows[idx]), len(rows), batch_size, dtype=dtype)
    return 1 / (1 + np.exp(-logits))
