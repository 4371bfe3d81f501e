"""Analyses of trained ClickPrompt runs, in one place: the notebooks, the dashboard (`app/main.py`),
`clickprompt analyse` and `clickprompt report` all call these functions.

    long_tail_table(ds, predictions, ...)          Sec 4.5, Table 6: AUC / log loss per long-tail subset
    subset_labels(ds, split, ...)                  the subset name of every row
    prompt_attention(model, tokenizer, ds, ...)    App. C.1, Table 7: attention over the K soft prompts
    masked_field_attention(...)                    the raw attention rows behind one line of Table 7
    field_attributions(model, config, ...)         Integrated Gradients on the CTR model's field embeddings
    token_attributions(model, config, ...)         Integrated Gradients on the PLM's word embeddings
    latency(models, ds, ...)                       App. C.2, Table 8: milliseconds per batch
    run_predictions(run_dir, ...)                  a run's click probabilities (saved, or recomputed)
    to_payload / from_payload / write_analysis     the analysis JSON format (`clickprompt analyse --out`,
                                                   `clickprompt report`, the dashboard's cache)
    AnalysisCache(root)                            results on disk per run and settings (the dashboard)

Definitions chosen here (each also in the function's docstring):

* Long tail (Table 6). Frequencies come from the TRAINING split only. A field's distinct training
  values are ranked by training frequency (ascending, ties broken by the value's string order) and the
  first round(tail_fraction x n_distinct) of them are long-tail; all other seen values are "head".
  Rows whose user or item never appears in training are a fifth, separate group, "cold start": the
  paper's four subsets (long-tail user? x long-tail item?) assume both are seen, and on ML-100K's time
  split about 86% of test rows are cold start, so folding them into "long-tail" would change what the
  table measures. Every row falls in exactly one of the five subsets.
* Prompt attention (Table 7). For one sample and one field at a time, the field's VALUE tokens are
  replaced by the mask token (the field name, "is" and "." stay, so the PLM knows which field it is
  asked to recover, exactly the PA-MLM task of Sec 3.5.1; `mask="segment"` masks the whole
  "name is value ." segment instead). The attention weights from the masked tokens (queries) to the K
  prompt keys at one layer are averaged over heads and masked tokens, then normalised to sum to 1 over
  the K prompts. The share of all attention that went to the prompts before normalising is kept in
  `table.attrs["prompt_mass"]`. With the input-layer strategy (Fig. 3 left) the K "prompt" keys of
  layer l are the hidden states at the K prompt positions entering layer l (at l = 0: the prompt
  embeddings themselves); the same computation applies.
* Field attributions. Integrated Gradients (captum `LayerIntegratedGradients`) on the CTR model's
  embedding layer, target = the click LOGIT (before the sigmoid; Eq. 9 / Eq. 10). Baseline = every
  field at its out-of-vocabulary id 0, i.e. "a sample whose values are all unknown to the model". (With
  min_count = 1 the OOV rows are never trained and stay near their N(0, 0.01^2) initialisation, so
  this is close to the zero-embedding baseline too.) A field's attribution is the sum over its
  embedding dimensions; the fields sum to logit(x) - logit(baseline) up to captum's convergence delta.
  For with-PLM checkpoints the text input is held fixed; only the ID side moves.
* Token attributions. Integrated Gradients on the PLM's word embeddings (text side), target = the
  click logit; the ID input is held fixed. Baseline = the same token ids with every non-special token
  replaced by the mask token (`baseline="mask"`, default: PA-MLM taught the PLM that [MASK] means "this
  content is hidden") or the pad token (`baseline="pad"`); special tokens, positions and the attention
  mask are the same in input and baseline.
* Latency (Table 8). Milliseconds per batch of `batch_size` test rows, inference only
  (`torch.inference_mode`, eval mode), after `warmup` untimed batches, median and 90th percentile of
  `repeats` timed batches, with a device synchronisation around each part. Every batch is timed in
  parts in one pass: "assembly" = building the batch from the prepared split (the id gather, plus the
  token-cache text assembly for PLM models) + host-to-device copy; "model" = the forward pass alone;
  "e2e" = assembly + forward + logits back to the host. Being the same batches, e2e >= model for every
  batch (so for every median and percentile). Building the token cache itself (once per dataset) is
  excluded.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from clickprompt.errors import ClickPromptError
from clickprompt.evaluation import ctr_metrics, delong_test, rel_impr
from clickprompt.rundir import ModelKind


class AnalysisError(ClickPromptError, ValueError):
    """An analysis was asked of a model or dataset that cannot support it (one-line message)."""


# ============================================================================ long tail (Table 6)

LT_LT = "long-tail user / long-tail item"
HEAD_LT = "head user / long-tail item"
LT_HEAD = "long-tail user / head item"
HEAD_HEAD = "head user / head item"
COLD = "cold start"
SUBSETS = (LT_LT, HEAD_LT, LT_HEAD, HEAD_HEAD, COLD)  # Table 6's row order, then cold start
_SUBSET_FLAGS = {LT_LT: (True, True), HEAD_LT: (False, True), LT_HEAD: (True, False), HEAD_HEAD: (False, False),
                 COLD: (None, None)}
_ITEM_FIELD_FALLBACKS = ("item_id", "isbn", "book_id")  # BookCrossing and GoodReads name their item field so


def _resolve_field(ds, field: str, role: str) -> str:
    names = ds.spec.names
    if field in names:
        return field
    if role == "item" and field == "item_id":
        for alt in _ITEM_FIELD_FALLBACKS:
            if alt in names:
                return alt
    raise AnalysisError(f"dataset {ds.name!r} has no {role} field {field!r} (fields: {', '.join(names)})")


def long_tail_sets(ds, field: str, tail_fraction: float = 0.1) -> dict:
    """Which values of `field` are seen in training and which of them are long-tail.

    Returns {"seen": Index of training values, "tail": Index of long-tail values, "n_distinct",
    "n_tail", "max_tail_count", "min_head_count", "boundary_ties"}: `boundary_ties` counts values that
    share the last long-tail value's training frequency but fell on the head side of the cut."""
    if not 0.0 <= tail_fraction <= 1.0:
        raise AnalysisError(f"tail_fraction must be in [0, 1], got {tail_fraction}")
    counts = ds.frames["train"][field].astype(str).value_counts()
    values = counts.index.to_numpy(dtype=str)
    freq = counts.to_numpy()
    order = np.lexsort((values, freq))  # ascending frequency, ties by value
    n_tail = int(math.floor(tail_fraction * len(values) + 0.5))
    tail = pd.Index(values[order[:n_tail]])
    max_tail = int(freq[order[n_tail - 1]]) if n_tail else None
    min_head = int(freq[order[n_tail]]) if n_tail < len(values) else None
    ties = int((freq[order[n_tail:]] == max_tail).sum()) if n_tail and max_tail == min_head else 0
    return {"seen": pd.Index(values), "tail": tail, "n_distinct": len(values), "n_tail": n_tail,
            "max_tail_count": max_tail, "min_head_count": min_head, "boundary_ties": ties}


def _subset_arrays(ds, split: str, tail_fraction: float, user_field: str, item_field: str):
    user_field = _resolve_field(ds, user_field, "user")
    item_field = _resolve_field(ds, item_field, "item")
    frame = ds.frames[split]
    info, flags = {}, {}
    for role, field in (("user", user_field), ("item", item_field)):
        sets = long_tail_sets(ds, field, tail_fraction)
        vals = frame[field].astype(str)
        flags[role] = (vals.isin(sets["seen"]).to_numpy(), vals.isin(sets["tail"]).to_numpy())
        info[role] = {"field": field, **{k: v for k, v in sets.items() if k not in ("seen", "tail")}}
    (u_seen, u_tail), (i_seen, i_tail) = flags["user"], flags["item"]
    labels = np.empty(len(frame), dtype=object)
    labels[u_tail & i_tail] = LT_LT
    labels[~u_tail & i_tail] = HEAD_LT
    labels[u_tail & ~i_tail] = LT_HEAD
    labels[~u_tail & ~i_tail] = HEAD_HEAD
    cold = ~u_seen | ~i_seen
    labels[cold] = COLD
    info["cold"] = {"n": int(cold.sum()), "unseen_user": int((~u_seen).sum()), "unseen_item": int((~i_seen).sum()),
                    "both_unseen": int((~u_seen & ~i_seen).sum())}
    return labels, info


def subset_labels(ds, split: str = "test", tail_fraction: float = 0.1, user_field: str = "user_id",
                  item_field: str = "item_id") -> np.ndarray:
    """The long-tail subset (one of `SUBSETS`) of every row of `split`, as an object array of strings.

    See `long_tail_table` for the definition. `item_field="item_id"` falls back to the dataset's own
    item field ("isbn" for BookCrossing, "book_id" for GoodReads) when the dataset has no "item_id"."""
    return _subset_arrays(ds, split, tail_fraction, user_field, item_field)[0]


def _definition(split: str, tail_fraction: float, info: dict, n_rows: int) -> str:
    parts = []
    for role in ("user", "item"):
        r = info[role]
        tie = (f"; {r['boundary_ties']} more {role}s with that same count fall on the head side (ties broken by "
               "value order)" if r["boundary_ties"] else "")
        cut = (f" (<= {r['max_tail_count']} training rows each{tie})" if r["n_tail"] else "")
        parts.append(
            f"Long-tail {role}s: the {r['n_tail']} of the {r['n_distinct']:,} distinct `{r['field']}` values seen in "
            f"the training split that have the fewest training rows, i.e. the bottom {tail_fraction:.0%} by count "
            f"of distinct {role}s{cut}; the other seen {role}s are head {role}s."
        )
    c = info["cold"]
    parts.append(
        f"Cold start: {split} rows whose {info['user']['field']} or {info['item']['field']} value never appears "
        f"in the training split ({c['n']:,} of {n_rows:,} rows, {c['n'] / max(n_rows, 1):.1%}: {c['unseen_user']:,} "
        f"with an unseen user, {c['unseen_item']:,} with an unseen item, {c['both_unseen']:,} both). They form a "
        "separate group, not part of the four long-tail subsets of the paper's Table 6 (Sec 4.5), which "
        f"assume both are seen in training. Frequencies come from the training split only; every {split} row "
        "is in exactly one of the five subsets."
    )
    return " ".join(parts)


def long_tail_table(ds, predictions: dict[str, np.ndarray], split: str = "test", tail_fraction: float = 0.1,
                    baseline: str | None = None, *, user_field: str = "user_id", item_field: str = "item_id",
                    min_rows: int = 10) -> pd.DataFrame:
    """Sec 4.5 / Table 6: AUC and log loss of each model on the long-tail subsets of `split`.

    predictions: model name -> click probabilities for every row of `split`, in split order.
    baseline: the model Rel.Impr (and DeLong's p) is measured against; None = the first model.

    Definition (also in `table.attrs["definition"]`, with the counts filled in): user and item
    frequencies come from the training split only; each field's distinct training values are ranked by
    frequency (ascending, ties by value) and the bottom `tail_fraction` of them, by count of distinct
    values, are long-tail. Rows are split into the paper's four mutually exclusive subsets (long-tail
    user? x long-tail item?) plus a separate "cold start" group: rows whose user or item never appears
    in training. The five subsets cover every row exactly once.

    Columns: subset, long_tail_user, long_tail_item (None for cold start), n, positive_rate, then per
    model "<model> AUC", "<model> log loss", and for non-baseline models "<model> Rel.Impr" (a
    fraction: 0.0833 = 8.33%) and "<model> DeLong p"; and "note". A subset with fewer than `min_rows`
    rows or a single class gets a missing AUC (NaN in the frame) and a note, never an error. `table.attrs` holds "definition",
    "long_tail" (the counts) and "baseline".
    """
    if not predictions:
        raise AnalysisError("long_tail_table needs at least one model's predictions")
    s = ds.split(split)
    n_rows = len(s)
    preds = {}
    for name, p in predictions.items():
        p = np.asarray(p, dtype=np.float64).reshape(-1)
        if len(p) != n_rows:
            raise AnalysisError(f"predictions of {name!r} have {len(p)} rows, the {split} split has {n_rows}")
        preds[name] = p
    names = list(preds)
    if baseline is None:
        baseline = names[0]
    if baseline not in preds:
        raise AnalysisError(f"baseline {baseline!r} is not one of the models ({', '.join(names)})")
    labels_of_row, info = _subset_arrays(ds, split, tail_fraction, user_field, item_field)
    y = s.labels.astype(np.float64)
    rows = []
    for subset in SUBSETS:
        sel = labels_of_row == subset
        n = int(sel.sum())
        yy = y[sel]
        lt_user, lt_item = _SUBSET_FLAGS[subset]
        row = {"subset": subset, "long_tail_user": lt_user, "long_tail_item": lt_item, "n": n,
               "positive_rate": float(yy.mean()) if n else None}
        note = ""
        if n == 0:
            note = "empty subset"
        elif n < min_rows:
            note = f"only {n} rows (< {min_rows}): AUC not reported"
        elif yy.min() == yy.max():
            note = "one class only: AUC undefined"
        for name in names:
            m = ctr_metrics(yy, preds[name][sel]) if n else {"auc": None, "logloss": None}
            row[f"{name} AUC"] = None if note else m["auc"]
            row[f"{name} log loss"] = m["logloss"]
        base_auc = row[f"{baseline} AUC"]
        if base_auc == 0 and not note:  # AUCs exist, a relative change does not
            note = f"Rel.Impr undefined: {baseline}'s AUC is 0"
        for name in names:
            if name == baseline:
                continue
            auc = row[f"{name} AUC"]
            row[f"{name} Rel.Impr"] = rel_impr(auc, base_auc) if auc is not None and base_auc else None
            p = None
            if auc is not None and min(yy.sum(), n - yy.sum()) >= 2:
                p = delong_test(yy, preds[name][sel], preds[baseline][sel])[2]
            row[f"{name} DeLong p"] = p
        row["note"] = note
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["definition"] = _definition(split, tail_fraction, info, n_rows)
    table.attrs["long_tail"] = info
    table.attrs["baseline"] = baseline
    table.attrs["split"] = split
    table.attrs["tail_fraction"] = tail_fraction
    return table


# ============================================================================ shared helpers


def _core(model):
    """The ClickPromptModel inside a ClickPromptForPretraining / ClickPromptForCTR (or itself)."""
    from clickprompt.model import ClickPromptModel

    core = getattr(model, "core", model)
    if not isinstance(core, ClickPromptModel):
        raise AnalysisError("this analysis needs a ClickPrompt model (pretraining or with-PLM checkpoint), "
                            f"got {type(model).__name__}")
    return core


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _max_text_length(core) -> int:
    """Longest text (special tokens included) the PLM's position table allows with the prompts."""
    plm = core.plm
    room = plm.config.max_position_embeddings - plm._first_position()
    if plm.shift_text_positions and core.generator is not None:
        room -= core.prompt_cfg.num_prompts
    return int(room)


def _run_max_length(config: dict | None, default: int = 128) -> int:
    try:
        return int(config["run_config"]["data"]["max_length"])
    except (TypeError, KeyError):
        return default


def row_tokens(tokenizer, ds, split: str, rows, max_length: int = 128) -> dict[str, np.ndarray]:
    """The token-cache text view (Eq. 4) of a few rows, with token_field and value_mask.

    Builds a token cache over just the values these rows use (tokenising a whole dataset's values for
    one sample would be wasteful); the ids are identical to the full cache's (`TokenCache.assemble`)."""
    from clickprompt.data.text import TokenCache

    rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
    frame = ds.frames[split].iloc[rows]
    values, index = [], []
    for f in ds.spec.names:
        col = frame[f].to_numpy(dtype=str)
        uniq = np.unique(col)
        values.append(uniq)
        index.append(np.searchsorted(uniq, col))
    cache = TokenCache(tokenizer, ds.spec.displays, values, max_length)
    return cache.assemble(np.stack(index, axis=1), with_fields=True)


# ============================================================================ prompt attention (Table 7)


def masked_field_attention(model, tokenizer, ds, split: str, row: int, field: str | int, layer: int = -1,
                           max_length: int | None = None, mask: str = "value") -> torch.Tensor:
    """Raw attention weights (heads, n_masked, K + Z) at `layer` from the masked tokens of `field`.

    The field's value tokens (`mask="value"`) or its whole "name is value ." segment (`mask="segment"`)
    are replaced by the mask token; `mask="none"` replaces nothing and reads the attention of the
    field's value tokens as they are (for PLMs pretrained without masking: GPT-2, PA-CLM). Keys are
    ordered [K prompts, Z text tokens] and each row sums to 1 over all K + Z keys (pad keys get 0).
    `layer` indexes the layers that return attention: all of an encoder's or GPT-2's, the ENCODER's for
    BART. Raises AnalysisError if the field has no tokens left after truncation, the model has no
    prompts, or the tokenizer has no mask token."""
    j = field if isinstance(field, int) else _field_index(ds, field)
    a = _masked_attentions(model, tokenizer, ds, split, row, [j], layer, max_length, mask)[j]
    if a is None:
        raise AnalysisError(f"field {ds.spec.displays[j]!r} has no tokens in row {row} (truncated by max_length?)")
    return a


def _masked_attentions(model, tokenizer, ds, split: str, row: int, fields: list[int], layer: int,
                       max_length: int | None, mask: str) -> dict[int, torch.Tensor | None]:
    """masked_field_attention for several fields of one row in one forward pass: a batch holding one
    copy of the row per field, each with that field masked. None for a field with no tokens."""
    from clickprompt.masking import mask_positions

    core = _core(model)
    if core.generator is None:
        raise AnalysisError("this model has no prompt interface (the 'w/o Prompt' ablation): no prompt attention")
    if mask not in ("value", "segment", "none"):
        raise AnalysisError(f"mask must be 'value', 'segment' or 'none', got {mask!r}")
    if mask != "none" and tokenizer.mask_token_id is None:
        raise AnalysisError("the tokenizer has no mask token (a PA-CLM model such as GPT-2?): use mask='none'")
    s = ds.split(split)
    if not 0 <= row < len(s):
        raise AnalysisError(f"row {row} out of range: the {split} split has {len(s)} rows")
    tok = row_tokens(tokenizer, ds, split, [row], max_length or _max_text_length(core))
    selections = {}  # field -> (Z,) bool: the tokens masked and read
    for j in fields:
        chosen = tok["token_field"][0] == j
        if mask != "segment":
            chosen &= tok["value_mask"][0]
        selections[j] = chosen
    present = [j for j in fields if selections[j].any()]
    out = {j: None for j in fields}
    if not present:
        return out
    n = len(present)
    input_ids = torch.from_numpy(tok["input_ids"]).expand(n, -1).contiguous()
    sel = torch.from_numpy(np.stack([selections[j] for j in present]))
    masked = input_ids if mask == "none" else mask_positions(input_ids, sel, tokenizer.mask_token_id)[0]
    ids = torch.from_numpy(s.ids[[row]]).expand(n, -1).contiguous()
    attention_mask = torch.from_numpy(tok["attention_mask"]).expand(n, -1).contiguous()
    device = _device(core)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _, _, attentions = core(ids.to(device), masked.to(device), attention_mask.to(device), output_attentions=True)
    finally:
        model.train(was_training)
    if not -len(attentions) <= layer < len(attentions):
        raise AnalysisError(f"layer {layer} out of range: the PLM returns attention for {len(attentions)} layers")
    a = attentions[layer].float().cpu()  # (n, heads, Z, K + Z)
    for b, j in enumerate(present):
        out[j] = a[b][:, sel[b], :]  # (heads, n_masked, K + Z)
    return out


def _field_index(ds, field: str) -> int:
    if field in ds.spec.names:
        return ds.spec.names.index(field)
    if field in ds.spec.displays:
        return ds.spec.displays.index(field)
    raise AnalysisError(f"unknown field {field!r} (fields: {', '.join(ds.spec.names)})")


def prompt_attention(model, tokenizer, ds, split: str, row: int, layer: int = -1, max_length: int | None = None,
                     *, mask: str = "value") -> pd.DataFrame:
    """App. C.1 / Table 7: how the tokens of each field, when masked, attend over the K soft prompts.

    For each field in turn, its value tokens (`mask="value"`, default; `"segment"`: the whole
    "name is value ." segment; `"none"`: nothing masked, the value tokens as they are, for PA-CLM
    models without a mask token) are replaced by the mask token and the model runs with
    `output_attentions`; the attention from the masked tokens to the K prompts at `layer` (default the
    last, as in the paper) is averaged over heads and masked tokens and normalised over the K prompts.
    Works for pretraining and with-PLM checkpoints, layer-wise strategy (the paper's) or input-layer
    strategy (then "prompt k" is the k-th prompt position's state entering `layer`).

    max_length: text budget in tokens; None = no truncation below the PLM's position limit, so every
    field has tokens to mask. Rows: fields (display names); columns "prompt 1".."prompt K"; each row
    sums to 1. attrs: "prompt_mass" (field -> share of all attention on the K prompts before
    normalising), "n_masked" (field -> number of masked tokens), "layer", "row", "split", "mask".
    A field with no tokens (truncated away) gets a row of NaN.
    """
    per_field = _masked_attentions(model, tokenizer, ds, split, row, list(range(len(ds.spec.displays))), layer,
                                   max_length, mask)  # checks the model has prompts, the row, the mask
    core = _core(model)
    K = core.prompt_cfg.num_prompts
    table, mass, count = {}, {}, {}
    for j, display in enumerate(ds.spec.displays):
        a = per_field[j]
        if a is None:  # no tokens left after truncation
            table[display] = [math.nan] * K
            mass[display], count[display] = math.nan, 0
            continue
        to_prompts = a[..., :K].mean(dim=(0, 1)).double()  # (K,): mean over heads and masked tokens
        total = float(to_prompts.sum())
        table[display] = (to_prompts / total).tolist() if total > 0 else [math.nan] * K
        mass[display], count[display] = total, int(a.shape[1])
    out = pd.DataFrame.from_dict(table, orient="index", columns=[f"prompt {k + 1}" for k in range(K)])
    out.index.name = "masked field"
    out.attrs.update(prompt_mass=mass, n_masked=count, layer=layer, row=int(row), split=split, mask=mask,
                     strategy=core.prompt_cfg.strategy)
    return out


# ============================================================================ attributions (captum)


def _rows_array(rows) -> np.ndarray:
    return np.atleast_1d(np.asarray(rows, dtype=np.int64))


def field_attributions(model, config: dict, tokenizer, ds, split: str, rows, n_steps: int = 32, *,
                       internal_batch_size: int | None = None) -> pd.DataFrame:
    """Integrated Gradients of the click logit w.r.t. the CTR model's field embeddings.

    Works for CTR-kind checkpoints (from scratch or ClickPrompt w/o PLM) and with-PLM checkpoints
    (then the text input is held fixed and only the ID side is integrated). Baseline: every field at
    its out-of-vocabulary id 0. One row per sample: a column per field (display name; attribution
    summed over embedding dimensions), then "logit", "baseline_logit" and "delta" (captum's convergence
    delta: sum of attributions - (logit - baseline_logit); small when n_steps suffices)."""
    from captum.attr import LayerIntegratedGradients

    rows = _rows_array(rows)
    kind = config.get("kind")
    s = ds.split(split)
    device = _device(model)
    ids = torch.from_numpy(s.ids[rows]).to(device)
    if kind == ModelKind.CTR:
        layer = model.ctr.embedding

        def forward(ids_):
            return model(ids_)["logits"]

        extra = ()
    elif kind == ModelKind.CLICKPROMPT_CTR:
        layer = model.core.ctr.embedding
        tok = row_tokens(tokenizer, ds, split, rows, _run_max_length(config))
        extra = (torch.from_numpy(tok["input_ids"]).to(device), torch.from_numpy(tok["attention_mask"]).to(device))

        def forward(ids_, input_ids, attention_mask):
            return model(ids_, input_ids, attention_mask)["logits"]
    else:
        raise AnalysisError(f"field attributions need a CTR or with-PLM checkpoint, not {kind!r}")
    baseline = torch.zeros_like(ids)  # OOV id 0 in every field
    was_training = model.training
    model.eval()
    try:
        lig = LayerIntegratedGradients(forward, layer)
        attr, delta = lig.attribute(ids, baselines=baseline, additional_forward_args=extra or None, n_steps=n_steps,
                                    internal_batch_size=internal_batch_size, return_convergence_delta=True)
        with torch.no_grad():
            logit = forward(ids, *extra)
            base_logit = forward(baseline, *extra)
    finally:
        model.train(was_training)
    per_field = attr.detach().float().sum(-1).cpu().numpy()  # (B, F, d) -> (B, F)
    out = pd.DataFrame(per_field, columns=ds.spec.displays, index=pd.Index(rows, name="row"))
    out["logit"] = logit.detach().float().cpu().numpy()
    out["baseline_logit"] = base_logit.detach().float().cpu().numpy()
    out["delta"] = delta.detach().float().cpu().numpy()
    out.attrs.update(method="LayerIntegratedGradients on the CTR field embeddings", baseline="OOV id 0 in every field",
                     target="click logit", n_steps=n_steps, split=split, kind=kind)
    return out


def token_attributions(model, config: dict, tokenizer, ds, split: str, rows, n_steps: int = 32, *,
                       baseline: str = "mask", internal_batch_size: int | None = None) -> pd.DataFrame:
    """Integrated Gradients of the click logit w.r.t. the PLM's word embeddings (with-PLM checkpoints).

    The ID input is held fixed. Baseline token ids: every non-special token replaced by the mask token
    (`baseline="mask"`) or the pad token (`"pad"`); special tokens and the attention mask are kept.
    Returns one row per real token: row, position, token, field (display name, or "[special]"),
    is_value (a token of the field's value), attribution (summed over the embedding dimensions).
    attrs["rows"]: row -> {"logit", "baseline_logit", "delta"} (delta: captum's convergence delta)."""
    from captum.attr import LayerIntegratedGradients

    if config.get("kind") != ModelKind.CLICKPROMPT_CTR:
        raise AnalysisError(f"token attributions need a with-PLM checkpoint (kind 'clickprompt-ctr'), not "
                            f"{config.get('kind')!r}: a CTR model has no text input")
    if baseline not in ("mask", "pad"):
        raise AnalysisError(f"baseline must be 'mask' or 'pad', got {baseline!r}")
    if getattr(model.core.plm, "is_encoder_decoder", False):
        raise AnalysisError("token attributions are not defined for encoder-decoder PLMs (BART): encoder and decoder "
                            "read the text through one shared embedding module")
    rows = _rows_array(rows)
    s = ds.split(split)
    device = _device(model)
    tok = row_tokens(tokenizer, ds, split, rows, _run_max_length(config))
    input_ids = torch.from_numpy(tok["input_ids"]).to(device)
    attention = torch.from_numpy(tok["attention_mask"]).to(device)
    content = torch.from_numpy(tok["token_field"] >= 0).to(device)  # (B, Z): text tokens, not special/pad
    fill = tokenizer.mask_token_id if baseline == "mask" else tokenizer.pad_token_id
    if fill is None:
        raise AnalysisError(f"the tokenizer has no {baseline} token; try baseline={'pad' if baseline == 'mask' else 'mask'!r}")
    base_ids = input_ids.masked_fill(content, fill)
    ids = torch.from_numpy(s.ids[rows]).to(device)

    def forward(input_ids_, ids_, attention_mask):
        return model(ids_, input_ids_, attention_mask)["logits"]

    was_training = model.training
    model.eval()
    try:
        lig = LayerIntegratedGradients(forward, model.core.plm.encoder.get_input_embeddings())
        attr, delta = lig.attribute(input_ids, baselines=base_ids, additional_forward_args=(ids, attention),
                                    n_steps=n_steps, internal_batch_size=internal_batch_size,
                                    return_convergence_delta=True)
        with torch.no_grad():
            logit = forward(input_ids, ids, attention).float().cpu().numpy()
            base_logit = forward(base_ids, ids, attention).float().cpu().numpy()
    finally:
        model.train(was_training)
    per_token = attr.detach().float().sum(-1).cpu().numpy()  # (B, Z, H) -> (B, Z)
    displays = np.array(["[special]", *ds.spec.displays], dtype=object)
    records = []
    for b, r in enumerate(rows):
        real = np.flatnonzero(tok["attention_mask"][b])
        tokens = tokenizer.convert_ids_to_tokens(tok["input_ids"][b, real].tolist())
        for pos, t in zip(real, tokens):
            records.append({"row": int(r), "position": int(pos), "token": t,
                            "field": displays[int(tok["token_field"][b, pos]) + 1],
                            "is_value": bool(tok["value_mask"][b, pos]), "attribution": float(per_token[b, pos])})
    out = pd.DataFrame.from_records(records, columns=["row", "position", "token", "field", "is_value", "attribution"])
    d = delta.detach().float().cpu().numpy()
    out.attrs.update(
        rows={int(r): {"logit": float(logit[b]), "baseline_logit": float(base_logit[b]), "delta": float(d[b])}
              for b, r in enumerate(rows)},
        method="LayerIntegratedGradients on the PLM word embeddings", baseline=f"{baseline} token ids",
        target="click logit", n_steps=n_steps, split=split,
    )
    return out


# ============================================================================ latency (Table 8)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batcher_for(model, config: dict, tokenizer, ds, split: str):
    from clickprompt.batching import scoring_batcher

    try:
        return scoring_batcher(config, tokenizer, ds)(ds.split(split))
    except ValueError:
        raise AnalysisError(f"latency needs a checkpoint that scores clicks, not {config.get('kind')!r}") from None


LATENCY_DEFINITION = (
    "milliseconds per batch, each batch timed in three parts in one pass: assembly = building the batch from the "
    "prepared split (the id gather; for PLM models also the token-cache text assembly) and copying it to the "
    "device; model = the forward pass alone; e2e = assembly + model + copying the logits back to the host, so "
    "e2e >= model for every batch. The token cache itself (built once per dataset) is not included. Median and "
    "p90 over the timed batches after untimed warm-up batches; torch.inference_mode, eval mode, device "
    "synchronised around each part.")


def latency(models: dict[str, tuple], ds, split: str = "test", batch_size: int = 128, warmup: int = 3,
            repeats: int = 20, *, baseline: str | None = None, aucs: dict | None = None,
            dtype: torch.dtype | None = None, on_batch=None) -> pd.DataFrame:
    """App. C.2 / Table 8: inference milliseconds per batch of each model on its current device.

    models: name -> (model, config, tokenizer) as returned by `RunDir.load_model`. Batches are
    consecutive `batch_size` rows of `split` (wrapping around). `warmup` untimed batches, then
    `repeats` timed ones, under `torch.inference_mode()` in eval mode (optionally under autocast to
    `dtype`). Every batch is timed in parts in ONE pass (`LATENCY_DEFINITION`): ms_assembly_* (batch
    built from the prepared split incl. the token-cache text assembly for PLM models, copied to the
    device), ms_model_* (the forward pass alone) and ms_e2e_* (assembly + forward + logits back to the
    host) -- the same batches, so end-to-end is never below model-only. Columns: model, kind, device,
    batch_size, params_m, ms_model_median / ms_model_p90, ms_e2e_median / ms_e2e_p90,
    ms_assembly_median. `on_batch(done, total)` is called after every batch (progress bars).

    With `baseline` (a name in `models`), also "auc" and "auc_impr" (Rel.Impr of the AUC vs the
    baseline, Table 8's last column). AUCs come from `aucs` (name -> AUC, or name -> list of AUCs on
    several datasets, aligned across models: then auc_impr is the mean of the per-dataset Rel.Impr, as
    in the paper), else from scoring the whole `split` once with each model.
    """
    from clickprompt.training import autocast, to_device

    if baseline is not None and baseline not in models:
        raise AnalysisError(f"baseline {baseline!r} is not one of the models ({', '.join(models)})")
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise AnalysisError("latency needs repeats >= 1, warmup >= 0 and batch_size >= 1")
    s = ds.split(split)
    n = len(s)
    bs = min(batch_size, n)
    records = []
    total, done = len(models) * (warmup + repeats), 0
    for name, (model, config, tokenizer) in models.items():
        device = _device(model)
        make_batch = _batcher_for(model, config, tokenizer, ds, split)
        index = [(np.arange(bs) + i * bs) % n for i in range(warmup + repeats)]
        was_training = model.training
        model.eval()
        t_asm, t_model, t_e2e = [], [], []
        try:
            with torch.inference_mode():
                for i, idx in enumerate(index):
                    _sync(device)
                    t0 = time.perf_counter()
                    batch = to_device(make_batch(idx), device)  # assembly + copy to the device
                    batch.pop("labels", None)
                    _sync(device)
                    t1 = time.perf_counter()
                    with autocast(device, dtype):
                        logits = model(**batch)["logits"]  # the forward pass alone
                    _sync(device)
                    t2 = time.perf_counter()
                    logits.float().cpu()  # back to the host
                    t3 = time.perf_counter()
                    if i >= warmup:
                        t_asm.append(t1 - t0)
                        t_model.append(t2 - t1)
                        t_e2e.append(t3 - t0)
                    done += 1
                    if on_batch is not None:
                        on_batch(done, total)
        finally:
            model.train(was_training)
        ms_a, ms_m, ms_e = 1e3 * np.asarray(t_asm), 1e3 * np.asarray(t_model), 1e3 * np.asarray(t_e2e)
        records.append({
            "model": name, "kind": config.get("kind"), "device": _device_name(device), "batch_size": bs,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "ms_model_median": float(np.median(ms_m)), "ms_model_p90": float(np.percentile(ms_m, 90)),
            "ms_e2e_median": float(np.median(ms_e)), "ms_e2e_p90": float(np.percentile(ms_e, 90)),
            "ms_assembly_median": float(np.median(ms_a)),
        })
    out = pd.DataFrame.from_records(records)
    if baseline is not None:
        if aucs is None:
            from clickprompt.batching import predict_probs

            aucs = {name: ctr_metrics(s.labels, predict_probs(m, c, t, ds, split))["auc"]
                    for name, (m, c, t) in models.items()}
        out["auc"] = [_mean_or_value(aucs.get(name)) for name in models]
        out["auc_impr"] = [None if name == baseline else _avg_rel_impr(aucs.get(name), aucs.get(baseline))
                           for name in models]
    out.attrs.update(split=split, warmup=warmup, repeats=repeats, baseline=baseline,
                     definition=f"{LATENCY_DEFINITION} Here: {repeats} timed batches after {warmup} warm-up batches.")
    return out


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def _mean_or_value(v):
    if v is None:
        return None
    if np.ndim(v) == 0:
        return float(v)
    return float(np.mean(v))


def _avg_rel_impr(a, b):
    if a is None or b is None:
        return None
    a, b = np.atleast_1d(np.asarray(a, dtype=float)), np.atleast_1d(np.asarray(b, dtype=float))
    if a.shape != b.shape:
        raise AnalysisError("per-dataset AUC lists must have the same length for every model")
    return float(np.mean((a - b) / b))


# ============================================================================ runs


def score_split(model, config: dict, tokenizer, ds, split: str, *, batch_size: int = 512, on_batch=None) -> np.ndarray:
    """Click probabilities of a CTR-kind or with-PLM checkpoint on a whole split, with `on_batch(done,
    total)` after every batch (the same computation as clickprompt.batching.predict_probs)."""
    from clickprompt.training import predict

    if not ModelKind(config["kind"]).scores_clicks:
        raise AnalysisError("a PA-MLM pretraining run makes no click predictions")
    make_batch = _batcher_for(model, config, tokenizer, ds, split)
    logits = predict(model, make_batch, len(ds.split(split)), batch_size, on_batch=on_batch)
    return 1 / (1 + np.exp(-logits))


def run_predictions(run: str | Path, split: str = "test", processed_dir: str | Path | None = None, *,
                    cache: "AnalysisCache | None" = None, on_batch=None):
    """(probs, ds) of a finished run: the saved predictions_test.parquet when `split` is "test" and it
    is there (no model is loaded), else the best checkpoint scored on `split` (`on_batch(done, total)`
    after every batch; with a `cache`, scored once per run and split, then read back from disk)."""
    from clickprompt.rundir import RunDir

    run = RunDir(run)
    ds = run.dataset(processed_dir)
    saved = run.read_predictions() if split == "test" else None
    if saved is not None and len(saved[1]) == len(ds.split("test")):
        return saved[1], ds
    key = cache.key([run.path], "predictions", {"split": split, "data": ds.fingerprint}) if cache is not None else None
    if key is not None:
        hit = cache.get_array(key)
        if hit is not None and len(hit) == len(ds.split(split)):
            return hit, ds
    model, config, tokenizer = run.load_model(ds)
    if not ModelKind(config["kind"]).scores_clicks:
        raise AnalysisError(f"{run.path}: a PA-MLM pretraining run makes no click predictions")
    probs = score_split(model, config, tokenizer, ds, split, on_batch=on_batch)
    if key is not None:
        cache.put_array(key, probs)
    return probs, ds


# ============================================================================ the analysis JSON format

# One format for every analysis, written by `clickprompt analyse ... --out DIR`, read by `clickprompt report`
# and the dashboard's disk cache. A payload is a JSON object:
#   {"analysis": KIND, "format": 1, "dataset": ..., <settings>, <the table>}
# with the table stored per kind (these keys predate the "format" key, which older files lack):
#   long_tail            "rows": records of long_tail_table (+ "definition", "long_tail", "baseline")
#   attention            "fields", "prompts", "table" (rows x K), "prompt_mass"
#   field_attributions   "rows": records with a "row" column
#   token_attributions   "tokens": records, "per_row": {row: {"logit", "baseline_logit", "delta"}}
#   latency              "rows": records, "definition"
# NaN is written as null. `to_payload(kind, table, **meta)` and `from_payload(payload)` convert both ways
# (the DataFrame gets its attrs back).
ANALYSIS_FORMAT = 1
ANALYSIS_KINDS = ("long_tail", "attention", "field_attributions", "token_attributions", "latency")


def _clean(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        return _clean(v.item())
    return v


def _records(df: pd.DataFrame) -> list[dict]:
    return [{str(k): _clean(v) for k, v in r.items()} for r in df.to_dict("records")]


def to_payload(kind: str, table: pd.DataFrame, **meta) -> dict:
    """An analysis table as its JSON payload (see the format above); `meta`: dataset, run(s), settings."""
    if kind not in ANALYSIS_KINDS:
        raise AnalysisError(f"unknown analysis {kind!r} (known: {', '.join(ANALYSIS_KINDS)})")
    a = table.attrs
    out = {"analysis": kind, "format": ANALYSIS_FORMAT, **_clean(meta)}
    if kind == "long_tail":
        out.update(definition=a.get("definition", ""), long_tail=_clean(a.get("long_tail", {})),
                   baseline=a.get("baseline"), split=a.get("split", meta.get("split")),
                   tail_fraction=a.get("tail_fraction", meta.get("tail_fraction")), rows=_records(table))
    elif kind == "attention":
        out.update(fields=[str(f) for f in table.index], prompts=[str(c) for c in table.columns],
                   table=[[_clean(v) for v in r] for r in table.to_numpy().tolist()],
                   prompt_mass=_clean(a.get("prompt_mass", {})), n_masked=_clean(a.get("n_masked", {})),
                   **{k: _clean(a[k]) for k in ("layer", "row", "split", "mask", "strategy") if k in a})
    elif kind == "field_attributions":
        out.update(rows=_records(table.reset_index()),
                   **{k: v for k, v in a.items() if isinstance(v, (str, int, float))})
    elif kind == "token_attributions":
        out.update(tokens=_records(table), per_row=_clean(a.get("rows", {})),
                   **{k: v for k, v in a.items() if isinstance(v, (str, int, float))})
    else:  # latency
        out.update(definition=a.get("definition", ""), rows=_records(table),
                   **{k: _clean(a[k]) for k in ("split", "warmup", "repeats", "baseline") if k in a})
    return out


def from_payload(payload: dict) -> pd.DataFrame:
    """The DataFrame of an analysis payload, with the attrs its function would have set (older payloads,
    without the "format" key, read the same)."""
    kind = payload.get("analysis")
    if kind == "long_tail":
        table = pd.DataFrame(payload["rows"])
        for c in table.columns:  # null -> NaN in numeric columns (AUC of a small subset)
            if c.endswith((" AUC", " log loss", " Rel.Impr", " DeLong p")) or c == "positive_rate":
                table[c] = pd.to_numeric(table[c], errors="coerce")
        table.attrs.update(definition=payload.get("definition", ""), long_tail=payload.get("long_tail", {}),
                           baseline=payload.get("baseline"), split=payload.get("split"),
                           tail_fraction=payload.get("tail_fraction"))
    elif kind == "attention":
        table = pd.DataFrame(payload["table"], index=pd.Index(payload["fields"], name="masked field"),
                             columns=payload["prompts"], dtype=float)
        mass = {k: (math.nan if v is None else v) for k, v in (payload.get("prompt_mass") or {}).items()}
        table.attrs.update(prompt_mass=mass, n_masked=payload.get("n_masked", {}),
                           **{k: payload[k] for k in ("layer", "row", "split", "mask", "strategy") if k in payload})
    elif kind == "field_attributions":
        table = pd.DataFrame(payload["rows"])
        if "row" in table.columns:
            table = table.set_index("row")
        table.attrs.update({k: payload[k] for k in ("method", "baseline", "target", "n_steps", "split", "kind")
                            if k in payload})
    elif kind == "token_attributions":
        table = pd.DataFrame(payload["tokens"], columns=["row", "position", "token", "field", "is_value", "attribution"])
        table.attrs.update(rows={int(k): v for k, v in (payload.get("per_row") or {}).items()},
                           **{k: payload[k] for k in ("method", "baseline", "target", "n_steps", "split") if k in payload})
    elif kind == "latency":
        table = pd.DataFrame(payload["rows"])
        table.attrs.update(definition=payload.get("definition", ""),
                           **{k: payload[k] for k in ("split", "warmup", "repeats", "baseline") if k in payload})
    else:
        raise AnalysisError(f"not an analysis payload (analysis = {kind!r})")
    return table


def write_analysis(out_dir: str | Path, stem: str, payload: dict, table: pd.DataFrame) -> tuple[Path, Path]:
    """`<out_dir>/<stem>.csv` (the table) and `<stem>.json` (the payload), written atomically."""
    from clickprompt.checkpoint import atomic_write_text

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    csv, js = d / f"{stem}.csv", d / f"{stem}.json"
    atomic_write_text(csv, table.to_csv(index=table.index.name is not None))
    atomic_write_text(js, json.dumps(payload, indent=2, default=_clean, allow_nan=False))
    return csv, js


def read_analysis(path: str | Path) -> dict | None:
    """A saved analysis payload (with "_path"), or None if the file is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("analysis") not in ANALYSIS_KINDS:
        return None
    return {**data, "_path": str(path)}


# ============================================================================ the disk cache


class AnalysisCache:
    """Analysis results on disk, per run and settings, so a second request is read back instead of
    recomputed (the dashboard: Long tail on the validation split, Attention, Attributions, Latency).

    A key is the SHA-256 of: the analysis name, its settings, the analysis format and package version,
    and each run's identity = its run manifest and best/ manifest (hashes of config, results,
    predictions and weights), so a recomputed run never hits an old entry. A run without a manifest
    (unfinished, or written by an older version) is not cached. Entries: `<root>/<key>.json` (a payload
    in the analysis JSON format) or `<key>.npy` (an array), written atomically."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @staticmethod
    def run_identity(run: str | Path) -> str | None:
        import hashlib

        from clickprompt.checkpoint import MANIFEST

        run = Path(run)
        parts = [run / MANIFEST, run / "best" / MANIFEST]
        if not parts[0].exists() and not parts[1].exists():
            return None
        h = hashlib.sha256()
        for p in parts:
            h.update(p.read_bytes() if p.exists() else b"-")
        return h.hexdigest()

    def key(self, runs, analysis: str, settings: dict) -> str | None:
        import hashlib

        import clickprompt

        ids = [self.run_identity(r) for r in runs]
        if any(i is None for i in ids):
            return None
        blob = json.dumps({"analysis": analysis, "settings": settings, "runs": ids, "format": ANALYSIS_FORMAT,
                           "version": clickprompt.__version__}, sort_keys=True, default=str)
        return f"{analysis}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}"

    def get(self, key: str | None) -> dict | None:
        if key is None:
            return None
        return read_analysis(self.root / f"{key}.json")

    def put(self, key: str | None, payload: dict) -> None:
        if key is None:
            return
        from clickprompt.checkpoint import atomic_write_text

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.root / f"{key}.json", json.dumps(payload, default=_clean, allow_nan=False))
        except OSError:  # a read-only place: no cache, never an error
            pass

    def get_array(self, key: str | None) -> np.ndarray | None:
        path = self.root / f"{key}.npy" if key is not None else None
        if path is None or not path.exists():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put_array(self, key: str | None, array: np.ndarray) -> None:
        if key is None:
            return
        import os

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{key}.{os.getpid()}.tmp.npy"
            np.save(tmp, np.asarray(array))
            os.replace(tmp, self.root / f"{key}.npy")
        except OSError:
            pass

    def cached(self, key: str | None, kind: str, compute, *, refresh: bool = False, **meta) -> tuple[pd.DataFrame, bool]:
        """(table, read_from_cache): the cached table for `key`, else (or with `refresh`) `compute()`,
        stored under it."""
        hit = None if refresh else self.get(key)
        if hit is not None:
            table = from_payload(hit)
            table.attrs["cached_at"] = hit.get("computed_at")
            return table, True
        table = compute()
        from datetime import datetime, timezone

        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.put(key, {**to_payload(kind, table, **meta), "computed_at": stamp})
        return table, False
