"""GPT-2 (decoder-only, PA-CLM) and BART (encoder-decoder, PA-MLM by reconstruction) through the real
pipeline functions (App. C.3): one pretraining run and one finetuning run each on the tiny dataset,
checkpoint reload, and the ClickPrompt core's gradients reaching the CTR embeddings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from clickprompt.checkpoint import load_checkpoint
from clickprompt.config import load_stage_config
from clickprompt.data.dataset import PreparedDataset
from clickprompt.data.prepare import prepare
from clickprompt.data.text import TokenCache
from clickprompt.batching import predict_probs, text_batcher
from clickprompt.model import build_clickprompt
from clickprompt.model import load_pretrained
from clickprompt.pipeline import finetune, pretrain
from clickprompt.plm.tiny import make_tiny_plm
from test_clickprompt_pipeline import TinySource


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("processed")
    prepare("tiny", root, root / "tiny", source=TinySource())
    return root


@pytest.fixture(scope="module", params=["gpt2", "bart"])
def tiny_plm(request, tmp_path_factory, tiny_data):
    texts = PreparedDataset(tiny_data / "tiny").texts("train")
    return request.param, make_tiny_plm(tmp_path_factory.mktemp("plm") / request.param, request.param, texts=texts)


def _cfg(stage, data_root, plm):
    cfg = load_stage_config("tiny", stage)
    cfg.data.dataset = "tiny"
    cfg.data.processed_dir = str(data_root)
    cfg.plm.name = str(plm)
    return cfg


def test_pretrain_and_finetune_through_the_pipeline(tiny_data, tiny_plm, tmp_path):
    family, plm_dir = tiny_plm
    pre = pretrain(_cfg("pretrain", tiny_data, plm_dir), tmp_path / "pre", progress=False)
    assert pre["steps"] == 4
    loss_key = "valid_clm_loss" if family == "gpt2" else "valid_mlm_loss"
    assert pre["objective"] == ("PA-CLM" if family == "gpt2" else "PA-MLM")
    assert np.isfinite(pre[loss_key]) and pre["masked_value_tokens"] > 0
    config, state = load_checkpoint(tmp_path / "pre" / "best")
    assert config["kind"] == "clickprompt-pretrain" and config["hf_config"]["model_type"] == family
    assert any(k.startswith("core.generator.") for k in state)

    out = tmp_path / "with"
    r = finetune(_cfg("finetune-with-plm", tiny_data, "unused"), out, pretrained=tmp_path / "pre", with_plm=True,
                 progress=False)
    assert r["steps"] == 4 and r["test"]["auc"] is not None and "alpha" in r
    model, config, tok = load_pretrained(out)
    assert model.pooling == "last"  # plm.pooling "auto": last real token (GPT-2) / decoder's final state (BART)
    ds = PreparedDataset(tiny_data / "tiny")
    saved = pd.read_parquet(out / "predictions_test.parquet")["prob"].to_numpy()
    np.testing.assert_allclose(predict_probs(model, config, tok, ds, "test"), saved, rtol=1e-4, atol=1e-5)

    wo = finetune(_cfg("finetune-without-plm", tiny_data, "unused"), tmp_path / "wo", pretrained=tmp_path / "pre",
                  with_plm=False, progress=False)
    assert wo["test"]["auc"] is not None


def test_core_prompts_change_outputs_and_reach_ctr_embeddings(tiny_data, tiny_plm):
    family, plm_dir = tiny_plm
    cfg = _cfg("pretrain", tiny_data, plm_dir)
    ds = PreparedDataset(tiny_data / "tiny")
    torch.manual_seed(0)
    core, tok, info = build_clickprompt(cfg, ds.spec)
    core.eval()
    batch = text_batcher(ds.split("train"), TokenCache.for_dataset(tok, ds, cfg.data.max_length))(np.arange(8))
    q, hidden = core(batch["ids"], batch["input_ids"], batch["attention_mask"])
    _, bare = core(batch["ids"], batch["input_ids"], batch["attention_mask"], prompt_mode="none")
    real = batch["attention_mask"].bool()
    assert (hidden - bare)[real].abs().max() > 1e-4  # prompts change the PLM's states
    probe = torch.randn(hidden.shape[-1], generator=torch.Generator().manual_seed(0))
    (hidden[real] @ probe).pow(2).mean().backward()
    grad = core.ctr.embedding.embedding.weight.grad
    assert grad is not None and grad.abs().sum() > 0  # through generator and PLM into the CTR embeddings


def test_prompt_attention_reads_both_families(tiny_data, tiny_plm):
    """Table 7's read-out on GPT-2 (nothing masked: no mask token) and BART (the encoder's attention):
    the one batched pass over all fields gives each field's row as its own forward pass does."""
    from clickprompt.analysis import masked_field_attention, prompt_attention

    family, plm_dir = tiny_plm
    ds = PreparedDataset(tiny_data / "tiny")
    torch.manual_seed(0)
    core, tok, _ = build_clickprompt(_cfg("pretrain", tiny_data, plm_dir), ds.spec)
    mask = "none" if family == "gpt2" else "value"
    table = prompt_attention(core, tok, ds, "test", 2, mask=mask)
    K = core.prompt_cfg.num_prompts
    assert table.shape == (len(ds.spec.displays), K)
    for j, display in enumerate(ds.spec.displays):
        raw = masked_field_attention(core, tok, ds, "test", 2, j, mask=mask)[..., :K].mean(dim=(0, 1))
        np.testing.assert_allclose(table.loc[display].to_numpy(), (raw / raw.sum()).numpy(), atol=1e-6)
