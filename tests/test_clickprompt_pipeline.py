"""ClickPrompt end to end on a tiny dataset and tiny random PLMs (BERT and RoBERTa families):
PA-MLM pretraining, finetuning with and without the PLM, reloading checkpoints, the w/o-PLM
checkpoint's equivalence with the plain CTR model, and the `quick` pipeline."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from clickprompt.checkpoint import load_checkpoint
from clickprompt.ctr import create_ctr
from clickprompt.data.dataset import PreparedDataset
from clickprompt.data.prepare import prepare
from clickprompt.data.sources.base import RawTable, Source, SourceSpec
from clickprompt.errors import CheckpointError
from clickprompt.batching import predict_probs
from clickprompt.model import load_pretrained
from clickprompt.pipeline import evaluate_run, finetune, finetune_model, pretrain, quick, train_ctr
from clickprompt.plm.tiny import make_tiny_plm

from analysis_helpers import GENRES, OCCUPATIONS, TINY_FIELDS
from analysis_helpers import tiny_cfg as _cfg  # the tiny profile pointed at a prepared dataset and a PLM


class TinySource(Source):
    """600 MovieLens-like interactions whose label depends on (occupation, genre) and on the item."""

    name = "tiny"
    spec = SourceSpec(
        fields=TINY_FIELDS, rating_range=(1, 5), label_threshold=4, neutral_ratings=(3,), split="time",
    )

    def read(self, raw_dir) -> RawTable:
        rng = np.random.default_rng(0)
        n = 600
        users = rng.integers(0, 40, n)
        items = rng.integers(0, 30, n)
        occ = np.array(OCCUPATIONS)[users % 5]
        genre = np.array(GENRES)[items % 5]
        like = ((users % 5) == (items % 5)) | (items % 7 == 0)
        rating = np.where(like, rng.choice([4, 5], n), rng.choice([1, 2, 3], n)).astype(float)
        frame = pd.DataFrame({
            "user_id": users.astype(str), "occupation": occ, "item_id": items.astype(str),
            "title": [f"Film number {i} ({1990 + i % 10})" for i in items], "genre": genre,
            "rating": rating, "timestamp": np.arange(n, dtype=np.int64) * 10,
        })
        return RawTable(frame)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("processed")
    prepare("tiny", root, root / "tiny", source=TinySource())
    return root


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return make_tiny_plm(tmp_path_factory.mktemp("plm") / "bert", "bert")


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory, tiny_data):
    texts = PreparedDataset(tiny_data / "tiny").texts("train")
    return make_tiny_plm(tmp_path_factory.mktemp("plm") / "roberta", "roberta", texts=texts)




@pytest.fixture(scope="module")
def pretrained_bert(tmp_path_factory, tiny_data, tiny_bert):
    run = tmp_path_factory.mktemp("runs") / "pretrain"
    result = pretrain(_cfg("pretrain", tiny_data, tiny_bert), run, progress=False)
    return run, result


def test_pretraining_run_is_complete(pretrained_bert):
    run, result = pretrained_bert
    assert result["steps"] == 4
    assert np.isfinite(result["valid_mlm_loss"])
    for mode in ("true", "shuffled", "none"):
        assert 0.0 <= result[f"value_token_acc_{mode}"] <= 1.0
    assert result["masked_value_tokens"] > 0
    config, state = load_checkpoint(run / "best")
    assert config["kind"] == "clickprompt-pretrain"
    assert any(k.startswith("core.generator.") for k in state)
    assert any(k.startswith("core.plm.model.") for k in state)
    assert (run / "tokenizer" / "tokenizer_config.json").exists()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert "valid_mlm_loss" in json.loads(lines[-1])


def test_pretraining_moves_the_ctr_embeddings(pretrained_bert, tiny_data):
    """PA-MLM trains the CTR model through the prompts: its embeddings leave their initialisation."""
    run, _ = pretrained_bert
    _, state = load_checkpoint(run / "best")
    cfg = _cfg("pretrain", tiny_data, "unused")
    torch.manual_seed(cfg.train.seed)
    fresh = create_ctr(cfg.ctr.model, PreparedDataset(tiny_data / "tiny").spec, cfg.ctr)
    trained = state["core.ctr.embedding.embedding.weight"]
    assert trained.shape == fresh.embedding.embedding.weight.shape
    assert not torch.allclose(trained, fresh.embedding.embedding.weight)


def test_finetune_without_plm_is_the_plain_ctr_model(pretrained_bert, tiny_data, tmp_path):
    run, _ = pretrained_bert
    out = tmp_path / "wo"
    result = finetune(_cfg("finetune-without-plm", tiny_data, "unused"), out, pretrained=run, with_plm=False, progress=False)
    assert result["test"]["auc"] is not None
    config, state = load_checkpoint(out / "best")
    assert config["kind"] == "ctr"
    # the checkpoint loads into the bare CTR model: same graph, same outputs
    ds = PreparedDataset(tiny_data / "tiny")
    plain = create_ctr("dcnv2", ds.spec, _cfg("finetune-without-plm", tiny_data, "unused").ctr)
    plain.load_state_dict({k[len("ctr."):]: v for k, v in state.items()})
    plain.eval()
    ids = torch.from_numpy(ds.split("test").ids)
    model, _, _ = load_pretrained(out, ds)
    with torch.no_grad():
        assert torch.equal(plain(ids), model(ids)["logits"])
    saved = pd.read_parquet(out / "predictions_test.parquet")["prob"].to_numpy()
    np.testing.assert_allclose(torch.sigmoid(plain(ids)).detach().numpy(), saved, rtol=1e-5, atol=1e-6)


def test_finetune_without_plm_starts_from_pretrained_ctr_weights(pretrained_bert, tiny_data, tmp_path):
    run, _ = pretrained_bert
    cfg = _cfg("finetune-without-plm", tiny_data, "unused")
    _, pre_state = load_checkpoint(run / "best")
    model, _ = finetune_model(cfg, PreparedDataset(tiny_data / "tiny"), pretrained=run, with_plm=False)
    state = model.state_dict()
    for k, v in pre_state.items():
        if k.startswith("core.ctr.") and not k.startswith("core.ctr.head."):
            assert torch.equal(state[k[len("core."):]], v), k


def test_finetune_with_plm_and_reload(pretrained_bert, tiny_data, tmp_path):
    run, _ = pretrained_bert
    out = tmp_path / "with"
    result = finetune(_cfg("finetune-with-plm", tiny_data, "unused"), out, pretrained=run, with_plm=True, progress=False)
    assert result["steps"] == 4 and 0 < result["test"]["n"]
    assert "alpha" in result
    model, config, tok = load_pretrained(out)
    assert config["kind"] == "clickprompt-ctr"
    ds = PreparedDataset(tiny_data / "tiny")
    probs = predict_probs(model, config, tok, ds, "test")
    saved = pd.read_parquet(out / "predictions_test.parquet")["prob"].to_numpy()
    np.testing.assert_allclose(probs, saved, rtol=1e-4, atol=1e-5)
    ev = evaluate_run(out, "test", baseline=None)
    assert abs(ev["auc"] - result["test"]["auc"]) < 1e-6


def test_with_plm_finetuning_can_take_its_ctr_part_from_a_click_trained_run(pretrained_bert, tiny_data, tmp_path):
    """init_ctr: the CTR model and its head from a finished w/o-PLM run, generator and PLM from PA-MLM; every
    mismatch refused before any write; a run with another init_ctr is not reused for this one."""
    from clickprompt.config import ConfigError
    from clickprompt.rundir import RunError

    run, _ = pretrained_bert
    wo = tmp_path / "wo"
    finetune(_cfg("finetune-without-plm", tiny_data, "unused"), wo, pretrained=run, with_plm=False, progress=False)
    cfg = _cfg("finetune-with-plm", tiny_data, "unused")
    ds = PreparedDataset(tiny_data / "tiny")
    model, _ = finetune_model(cfg, ds, pretrained=run, with_plm=True, init_ctr=wo)
    state, (_, wo_state), (_, pre_state) = model.state_dict(), load_checkpoint(wo / "best"), load_checkpoint(run / "best")
    for k, v in wo_state.items():  # every CTR weight (head included) is the click-trained run's
        assert torch.equal(state["core." + k], v), k
    assert any(k.startswith("core.ctr.head.") for k in state) and any(k.startswith("ctr.head.") for k in wo_state)
    for k, v in pre_state.items():  # the prompt generator and the PLM are PA-MLM's
        if k.startswith(("core.generator.", "core.plm.")) and k in state:
            assert torch.equal(state[k], v), k
    result = finetune(cfg, tmp_path / "with", pretrained=run, with_plm=True, init_ctr=wo, progress=False)
    assert result["init_ctr"] == str(wo) and result["steps"] == 4
    config = json.loads((tmp_path / "with" / "config.json").read_text())
    assert config["init_ctr"] == str(wo) and len(config["init_ctr_weights"]) == 64
    # the same directory without init_ctr is another run: refused, not reused
    with pytest.raises(RunError, match="init_ctr"):
        finetune(cfg, tmp_path / "with", pretrained=run, with_plm=True, progress=False)
    with pytest.raises(ConfigError, match="only a finetuning with the PLM"):
        finetune(_cfg("finetune-without-plm", tiny_data, "unused"), tmp_path / "x1", pretrained=run, with_plm=False,
                 init_ctr=wo, progress=False)
    with pytest.raises(CheckpointError, match="not a click-trained CTR model"):
        finetune(cfg, tmp_path / "x2", pretrained=run, with_plm=True, init_ctr=run, progress=False)
    other = _cfg("train-ctr", tiny_data, "unused")
    other.ctr.model = "fm"
    train_ctr(other, tmp_path / "fm", progress=False)
    with pytest.raises(ConfigError, match="ctr.model: 'fm' there, 'dcnv2' here"):
        finetune(cfg, tmp_path / "x3", pretrained=run, with_plm=True, init_ctr=tmp_path / "fm", progress=False)
    assert not any((tmp_path / d).exists() for d in ("x1", "x2", "x3"))


def test_finetune_variants_no_prompts_and_input_strategy(tiny_data, tiny_bert, tmp_path):
    """w/o Pretrain (no --pretrained) with the w/o Prompt switch, and the input-layer strategy."""
    cfg = _cfg("finetune-with-plm", tiny_data, tiny_bert)
    cfg.prompt.use_prompts = False
    r = finetune(cfg, tmp_path / "noprompt", pretrained=None, with_plm=True, progress=False)
    assert r["test"]["auc"] is not None
    _, state = load_checkpoint(tmp_path / "noprompt" / "best")
    assert not any(k.startswith("core.generator.") for k in state)
    cfg = _cfg("finetune-with-plm", tiny_data, tiny_bert)
    cfg.prompt.strategy = "input"
    r = finetune(cfg, tmp_path / "input", pretrained=None, with_plm=True, progress=False)
    assert r["test"]["auc"] is not None


def test_roberta_family_pretrain_and_finetune_step(tiny_data, tiny_roberta, tmp_path):
    pre = pretrain(_cfg("pretrain", tiny_data, tiny_roberta), tmp_path / "pre", progress=False)
    assert pre["steps"] == 4 and np.isfinite(pre["valid_mlm_loss"])
    r = finetune(_cfg("finetune-with-plm", tiny_data, "unused"), tmp_path / "ft", pretrained=tmp_path / "pre",
                 with_plm=True, progress=False)
    assert r["steps"] == 4 and r["test"]["auc"] is not None


def test_pretrained_run_of_other_data_is_refused(pretrained_bert, tmp_path):
    run, _ = pretrained_bert
    other_root = tmp_path / "processed"

    class Other(TinySource):
        def read(self, raw_dir):
            raw = super().read(raw_dir)
            raw.frame = raw.frame.iloc[:500]
            return raw

    prepare("tiny", other_root, other_root / "tiny", source=Other())
    cfg = _cfg("finetune-with-plm", other_root, "unused")
    with pytest.raises(CheckpointError, match="fingerprint"):
        finetune(cfg, tmp_path / "x", pretrained=run, with_plm=True, progress=False)


def test_quick_pipeline_end_to_end(tiny_data, tiny_bert, tmp_path):
    summary = quick("tiny", tmp_path / "quick", profile="tiny", processed_dir=tiny_data, plm=str(tiny_bert),
                    progress=False)
    # the tiny profile, as the quick one, starts the with-PLM CTR part from the w/o PLM run, and says so
    assert [r["model"] for r in summary["rows"]] == ["dcnv2 (from scratch)", "ClickPrompt w/o PLM",
                                                     "ClickPrompt with PLM (CTR part from finetune-without-plm)"]
    for r in summary["rows"][1:]:
        assert r["rel_impr"] is not None and 0 <= r["delong_p"] <= 1
    md = (tmp_path / "quick" / "summary.md").read_text()
    assert "| ClickPrompt with PLM (CTR part from finetune-without-plm) |" in md and "value-token accuracy" in md
    # a second call recomputes nothing: the finished runs are read back
    again = quick("tiny", tmp_path / "quick", profile="tiny", processed_dir=tiny_data, plm=str(tiny_bert), progress=False)
    assert again["rows"][0]["test_auc"] == summary["rows"][0]["test_auc"]


def test_main_job_runs_both_acts_on_the_tiny_profile(tiny_data, tiny_bert, tmp_path, capsys):
    from clickprompt.cli import main as cli

    out = tmp_path / "main"
    rc = cli(["quick", "--dataset", "tiny", "--profile", "tiny", "--processed-dir", str(tiny_data),
              "--plm", str(tiny_bert), "--out", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    md = (out / "summary.md").read_text()
    assert printed.strip() == md.strip()
    assert "## Act 1: the positive control" in md and "## Act 2: tiny" in md
    summary = json.loads((out / "summary.json").read_text())
    act1 = summary["act1"]
    assert [r["model"] for r in act1["rows"]] == ["DCNv2 from scratch", "ClickPrompt with PLM"]
    assert 0.5 < act1["ceiling"]["target"] <= 1 and 0 <= act1["rows"][1]["delong_p_target"] <= 1
    assert "ceiling (the true click probabilities)" in act1["table"]
    assert (tiny_data / "control-tiny" / "control.json").exists()  # the profile's control dataset
    budgets = summary["act2"]["budgets"]
    assert budgets["ClickPrompt with PLM (CTR part from finetune-without-plm)"]["samples"] == 4 * 32  # 4 steps of 32 (the tiny profile)
    assert "training samples" in summary["act2"]["verdict"]
    # every number in the verdicts comes from the runs: act 1's AUCs are the table's, and the verdict says the
    # pipeline works only when the text model wins significantly and comes within 0.05 of the ceiling
    from clickprompt.verdicts import compare_words

    r, base = act1["rows"][1], act1["rows"][0]
    assert f"{r['auc_target']:.3f}" in act1["verdict"]
    won = compare_words(r["auc_target"], base["auc_target"], r["delong_p_target"]) == "significantly above"
    assert ("the pipeline works" in act1["verdict"]) == (won and act1["ceiling"]["target"] - r["auc_target"] < 0.05)
    assert compare_words(0.8, 0.7, 0.01) == "significantly above" and compare_words(0.6, 0.7, 1e-9) == "significantly below"
    assert compare_words(0.8, 0.7, 0.2) == "not distinguishable from"


def test_act_two_says_where_unseen_values_are_when_the_text_does_not_win():
    from clickprompt.verdicts import act_two

    rows = [{"model": "dcnv2 (from scratch)", "test_auc": 0.788, "delong_p": None, "rel_impr": None},
            {"model": "ClickPrompt w/o PLM", "test_auc": 0.787, "delong_p": 0.34, "rel_impr": -0.0009},
            {"model": "ClickPrompt with PLM", "test_auc": 0.778, "delong_p": 1e-7, "rel_impr": -0.0127}]
    oov = {"user_id": 0.858, "gender": 0.0, "zipcode": 0.666, "title": 0.016}
    text = act_two({"rows": rows}, {}, oov)
    assert "significantly below" in text
    assert "gender, title have their own embedding for at least 95% of rows (most unseen: title 1.6%)" in text
    assert "the unseen values are user_id (86% of rows), zipcode (67% of rows)" in text
    rows[2].update(test_auc=0.80, delong_p=1e-7)  # a with-PLM win needs no excuse
    assert "unseen values" not in act_two({"rows": rows}, {}, oov)
