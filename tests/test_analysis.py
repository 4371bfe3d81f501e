"""clickprompt.analysis on a tiny skewed dataset and tiny random BERTs: long-tail subsets (Table 6),
prompt attention (Table 7), Integrated-Gradients completeness, latency (Table 8)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch

from analysis_helpers import tiny_cfg, tiny_runs
from clickprompt import analysis as A
from clickprompt.data.dataset import PreparedDataset
from clickprompt.evaluation import ctr_metrics
from clickprompt.model import build_clickprompt
from clickprompt.model import load_pretrained


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared machine: one intra-op thread is faster and steadier."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = tiny_runs(tmp_path_factory)
    ds = PreparedDataset(e["data"] / "tiny")
    runs = e["runs"]
    return {**e, "ds": ds, "ctr": load_pretrained(runs / "dcnv2", ds), "pre": load_pretrained(runs / "pretrain", ds),
            "with": load_pretrained(runs / "with-plm", ds)}


# ------------------------------------------------------------------ long tail (Table 6)


def test_subsets_cover_every_test_row_exactly_once(env):
    ds = env["ds"]
    labels = A.subset_labels(ds, "test")
    test, train = ds.frames["test"], ds.frames["train"]
    assert len(labels) == len(test) and set(labels) <= set(A.SUBSETS)
    # cold start = user or item unseen in training, computed independently
    cold = ~test["user_id"].isin(set(train["user_id"])) | ~test["item_id"].isin(set(train["item_id"]))
    assert cold.sum() > 0
    np.testing.assert_array_equal(labels == A.COLD, cold.to_numpy())
    table = A.long_tail_table(ds, {"m": np.full(len(test), 0.5)})
    assert list(table["subset"]) == list(A.SUBSETS)
    assert table["n"].sum() == len(test)
    for subset, n in zip(table["subset"], table["n"]):
        assert (labels == subset).sum() == n


def test_long_tail_is_bottom_fraction_of_training_users_by_frequency(env):
    ds = env["ds"]
    counts = ds.frames["train"]["user_id"].value_counts()
    sets = A.long_tail_sets(ds, "user_id", 0.1)
    assert sets["n_distinct"] == len(counts)
    assert sets["n_tail"] == len(sets["tail"]) == math.floor(0.1 * len(counts) + 0.5)
    tail_counts = counts[list(sets["tail"])]
    head_counts = counts.drop(list(sets["tail"]))
    assert tail_counts.max() <= head_counts.min()
    # a long-tail row has a tail user: checked against the training counts, not the helper
    labels = A.subset_labels(ds, "test", 0.5)
    test = ds.frames["test"]
    tail_users = set(A.long_tail_sets(ds, "user_id", 0.5)["tail"])
    for lab, u in zip(labels, test["user_id"]):
        if lab in (A.LT_LT, A.LT_HEAD):
            assert u in tail_users
        elif lab in (A.HEAD_LT, A.HEAD_HEAD):
            assert u not in tail_users and u in set(counts.index)


def test_long_tail_table_metrics_notes_and_definition(env):
    ds = env["ds"]
    y = ds.split("test").labels
    rng = np.random.default_rng(1)
    preds = {"base": rng.random(len(y)), "better": 0.6 * y + 0.4 * rng.random(len(y))}
    table = A.long_tail_table(ds, preds, tail_fraction=0.5, min_rows=5)
    labels = A.subset_labels(ds, "test", 0.5)
    for _, r in table.iterrows():
        sel = labels == r["subset"]
        if r["note"]:
            assert pd.isna(r["base AUC"]) and pd.isna(r["better AUC"])
            continue
        m = ctr_metrics(y[sel], preds["better"][sel])
        assert r["better AUC"] == pytest.approx(m["auc"])
        assert r["better log loss"] == pytest.approx(m["logloss"])
        assert r["better Rel.Impr"] == pytest.approx((r["better AUC"] - r["base AUC"]) / r["base AUC"])
        assert 0 <= r["better DeLong p"] <= 1
    assert "base Rel.Impr" not in table.columns
    assert any(table["note"] != "") and any(table["note"] == "")  # small subsets noted, large ones scored
    d = table.attrs["definition"]
    assert "training split" in d and "Cold start" in d and "exactly one" in d
    # a one-class subset gets a note, not an exception
    one_class = A.long_tail_table(ds, {"m": preds["base"]}, tail_fraction=0.5, min_rows=1)
    small = one_class[(one_class["n"] > 0) & one_class["positive_rate"].isin([0.0, 1.0])]
    assert all("one class" in n for n in small["note"])
    # a baseline ranking every subset backwards (AUC 0): the AUCs stay, the undefined Rel.Impr is noted
    inverted = A.long_tail_table(ds, {"base": 1.0 - y, "better": preds["better"]}, tail_fraction=0.5, min_rows=5)
    scored = inverted[inverted["base AUC"].notna()]
    assert len(scored) and (scored["base AUC"] == 0).all() and scored["better AUC"].notna().all()
    assert scored["better Rel.Impr"].isna().all() and (scored["note"] == "Rel.Impr undefined: base's AUC is 0").all()
    with pytest.raises(A.AnalysisError, match="rows"):
        A.long_tail_table(ds, {"m": np.zeros(3)})
    with pytest.raises(A.AnalysisError, match="no user field"):
        A.long_tail_table(ds, preds, user_field="nope")


# ------------------------------------------------------------------ prompt attention (Table 7)


def _peaked(model):
    """A copy whose prompt generator emits large, varied prompts (an untrained one is nearly uniform)."""
    m = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        m.core.generator.w2.copy_(torch.randn(m.core.generator.w2.shape, generator=g) * 10.0)
    return m


def test_prompt_attention_rows(env):
    ds = env["ds"]
    model, _, tok = env["pre"]
    model = _peaked(model)
    raw = A.masked_field_attention(model, tok, ds, "test", 3, "title")
    K = model.core.prompt_cfg.num_prompts
    assert raw.shape[0] == model.core.plm.num_heads and raw.shape[1] >= 1
    torch.testing.assert_close(raw.sum(-1), torch.ones(raw.shape[:2]), atol=1e-5, rtol=0)  # over ALL keys
    assert (raw[..., :K].sum(-1) < 1).all()  # the text keys get the rest
    table = A.prompt_attention(model, tok, ds, "test", 3)
    assert list(table.index) == ds.spec.displays
    assert list(table.columns) == [f"prompt {k + 1}" for k in range(K)]
    np.testing.assert_allclose(table.sum(axis=1), 1.0, atol=1e-6)
    vals = table.to_numpy()
    assert np.ptp(vals, axis=0).max() > 1e-2  # fields attend differently
    assert all(0 < m < 1 for m in table.attrs["prompt_mass"].values())
    # the row by hand: mean over heads and masked tokens of the prompt keys, normalised
    by_hand = raw[..., :K].mean(dim=(0, 1))
    np.testing.assert_allclose(table.loc["Title"].to_numpy(), (by_hand / by_hand.sum()).numpy(), atol=1e-6)
    seg = A.prompt_attention(model, tok, ds, "test", 3, mask="segment")
    assert seg.attrs["n_masked"]["Title"] > table.attrs["n_masked"]["Title"]
    unmasked = A.prompt_attention(model, tok, ds, "test", 3, mask="none")  # PA-CLM models have no mask token
    np.testing.assert_allclose(unmasked.sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(unmasked.to_numpy(), vals)
    with pytest.raises(A.AnalysisError, match="out of range"):
        A.masked_field_attention(model, tok, ds, "test", 3, "title", layer=5)


def test_prompt_attention_with_plm_checkpoint_and_input_strategy(env):
    ds = env["ds"]
    model, _, tok = env["with"]
    table = A.prompt_attention(model, tok, ds, "valid", 0, layer=0)
    np.testing.assert_allclose(table.sum(axis=1), 1.0, atol=1e-6)
    cfg = tiny_cfg("pretrain", env["data"], env["plm"])
    cfg.prompt.strategy = "input"
    torch.manual_seed(0)
    core, tok2, _ = build_clickprompt(cfg, ds.spec)
    table = A.prompt_attention(core, tok2, ds, "test", 0)
    assert table.attrs["strategy"] == "input"
    np.testing.assert_allclose(table.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(A.AnalysisError, match="ClickPrompt model"):
        A.prompt_attention(env["ctr"][0], tok, ds, "test", 0)


# ------------------------------------------------------------------ attributions (captum)


def test_field_attributions_are_complete_ctr_and_with_plm(env):
    ds = env["ds"]
    ids = torch.from_numpy(ds.split("test").ids[[0, 5, 9]])
    m, config, _ = env["ctr"]
    m = copy.deepcopy(m)
    with torch.no_grad():
        m.ctr.embedding.embedding.weight.mul_(30.0)  # make the logit move visibly between input and baseline
    fa = A.field_attributions(m, config, None, ds, "test", [0, 5, 9], n_steps=32)
    assert list(fa.columns[: ds.spec.num_fields]) == ds.spec.displays
    with torch.no_grad():
        logit = m(ids)["logits"].numpy()
        base = m(torch.zeros_like(ids))["logits"].numpy()
    np.testing.assert_allclose(fa["logit"], logit, atol=1e-5)
    np.testing.assert_allclose(fa["baseline_logit"], base, atol=1e-5)
    total = fa[ds.spec.displays].sum(axis=1).to_numpy()
    assert np.abs(logit - base).max() > 0.05
    np.testing.assert_allclose(total, logit - base, atol=2e-3 + 0.02 * np.abs(logit - base).max())
    assert np.abs(fa["delta"]).max() < 2e-3 + 0.02 * np.abs(logit - base).max()
    # with PLM: the text is held fixed, only the ID side moves
    mw, cw, tw = env["with"]
    fw = A.field_attributions(mw, cw, tw, ds, "test", [0], n_steps=16)
    diff = (fw["logit"] - fw["baseline_logit"]).to_numpy()
    np.testing.assert_allclose(fw[ds.spec.displays].sum(axis=1), diff, atol=1e-4 + 0.02 * np.abs(diff).max())
    with pytest.raises(A.AnalysisError):
        A.field_attributions(*env["pre"][:1], env["pre"][1], env["pre"][2], ds, "test", [0])


def test_token_attributions_are_complete(env):
    ds = env["ds"]
    m, config, tok = env["with"]
    ta = A.token_attributions(m, config, tok, ds, "test", [0, 2], n_steps=16)
    assert set(ta["row"]) == {0, 2}
    assert set(ta["field"]) == {"[special]", *ds.spec.displays}
    assert (ta.loc[ta["field"] == "[special]", "attribution"] == 0).all()  # same id in input and baseline
    assert ta["is_value"].any()
    for r, info in ta.attrs["rows"].items():
        total = ta.loc[ta["row"] == r, "attribution"].sum()
        diff = info["logit"] - info["baseline_logit"]
        assert total == pytest.approx(diff, abs=1e-4 + 0.02 * abs(diff))
        assert abs(info["delta"]) < 1e-4 + 0.02 * abs(diff)
    # the baseline logit is what the model says with every non-special token masked
    row_tok = A.row_tokens(tok, ds, "test", [0], 64)
    ids = torch.from_numpy(row_tok["input_ids"])
    base_ids = ids.masked_fill(torch.from_numpy(row_tok["token_field"] >= 0), tok.mask_token_id)
    with torch.no_grad():
        b = m(torch.from_numpy(ds.split("test").ids[[0]]), base_ids, torch.from_numpy(row_tok["attention_mask"]))["logits"]
    assert float(b) == pytest.approx(ta.attrs["rows"][0]["baseline_logit"], abs=1e-5)
    with pytest.raises(A.AnalysisError, match="text input"):
        A.token_attributions(*env["ctr"][:2], None, ds, "test", [0])


# ------------------------------------------------------------------ latency (Table 8)


def test_latency_columns_and_auc_impr(env):
    ds = env["ds"]
    models = {"DCNv2": env["ctr"], "ClickPrompt with PLM": env["with"]}
    table = A.latency(models, ds, batch_size=8, warmup=1, repeats=3, baseline="DCNv2")
    assert list(table["model"]) == list(models)
    for col in ("ms_model_median", "ms_model_p90", "ms_e2e_median", "ms_e2e_p90"):
        assert (table[col] > 0).all()
    assert (table["ms_model_p90"] >= table["ms_model_median"]).all()
    assert table["batch_size"].tolist() == [8, 8]
    assert pd.isna(table.loc[0, "auc_impr"])
    auc = table["auc"].to_numpy()
    assert table.loc[1, "auc_impr"] == pytest.approx((auc[1] - auc[0]) / auc[0])
    # per-dataset AUC lists: the mean of the per-dataset improvements (Table 8's last column)
    t2 = A.latency(models, ds, batch_size=8, warmup=0, repeats=1, baseline="DCNv2",
                   aucs={"DCNv2": [0.8, 0.5], "ClickPrompt with PLM": [0.88, 0.5]})
    assert t2.loc[1, "auc_impr"] == pytest.approx(0.05)
    with pytest.raises(A.AnalysisError):
        A.latency({"pre": env["pre"]}, ds, repeats=1)


def test_run_predictions_reads_saved_or_recomputes(env):
    probs, ds = A.run_predictions(env["runs"] / "with-plm")
    saved = pd.read_parquet(env["runs"] / "with-plm" / "predictions_test.parquet")["prob"].to_numpy()
    np.testing.assert_allclose(probs, saved)
    valid, _ = A.run_predictions(env["runs"] / "dcnv2", "valid")
    assert len(valid) == len(ds.split("valid"))
