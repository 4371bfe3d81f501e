"""The ablations of Tables 4 and 5 are switches on the one code path; each must be what the paper defines.

    w/o Prompt    (Table 5)  PA-MLM kept, prompt interface removed in finetuning: two towers, alpha-summed
    w/o Pretrain  (Table 5)  no PA-MLM (the PLM checkpoint, a fresh CTR model), prompt interface kept
    w/o Both      (Table 5)  neither
    w/o Layerwise (Table 4)  prompts at the input layer only (Fig. 3 left), in pretraining and finetuning
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clickprompt.checkpoint import load_checkpoint
from clickprompt.cli import main as cli_main
from clickprompt.data.dataset import PreparedDataset
from clickprompt.data.text import TokenCache
from clickprompt.batching import text_batcher
from clickprompt.model import load_pretrained
from clickprompt.pipeline import finetune, finetune_model, pretrain
from clickprompt.plm import load_plm
from analysis_helpers import tiny_cfg as _cfg
from test_clickprompt_pipeline import tiny_bert, tiny_data  # noqa: F401  (shared module-scoped fixtures)






@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tiny_data, tiny_bert):
    run = tmp_path_factory.mktemp("runs") / "pretrain"
    pretrain(_cfg("pretrain", tiny_data, tiny_bert), run, progress=False)
    return run


def _state(run):
    return load_checkpoint(run / "best")[1]


def _plm_checkpoint_state(plm_dir) -> dict:
    model, _, _ = load_plm(str(plm_dir))
    return {f"core.plm.model.{k}": v for k, v in model.state_dict().items()}


def _initial(cfg, tiny_data, pretrained, with_plm=True) -> dict:
    """The state a finetuning starts from, before its first step."""
    model, _ = finetune_model(cfg, PreparedDataset(tiny_data / "tiny"), pretrained=pretrained, with_plm=with_plm)
    return model.state_dict()


def test_full_clickprompt_loads_everything_pretrained(pretrained, tiny_data):
    pre, ft = _state(pretrained), _initial(_cfg("finetune-with-plm", tiny_data, "unused"), tiny_data, pretrained)
    shared = [k for k in pre if k in ft]  # tied weights are saved under one of their names
    assert len(shared) > 0.9 * len(pre)
    for k in shared:  # CTR model, generator and PLM all come from PA-MLM
        assert torch.equal(ft[k], pre[k]), k
    assert any(k.startswith("core.generator.") for k in ft)


def test_wo_prompt_keeps_pa_mlm_weights_and_drops_the_interface(pretrained, tiny_data, tmp_path):
    out = tmp_path / "wo-prompt"
    cfg = _cfg("finetune-with-plm", tiny_data, "unused", prompt__use_prompts=False)
    pre, ft = _state(pretrained), _initial(cfg, tiny_data, pretrained)
    finetune(cfg, out, pretrained=pretrained, with_plm=True, progress=False)
    assert not any(k.startswith("core.generator.") for k in ft)
    kept = [k for k in pre if k.startswith(("core.ctr.", "core.plm.")) and k in ft]
    assert "core.ctr.embedding.embedding.weight" in kept and sum(k.startswith("core.plm.") for k in kept) > 10
    for k in kept:
        assert torch.equal(ft[k], pre[k]), k  # semantic-aware initialisation kept
    # two towers: y = alpha * y_CTR + (1 - alpha) * y_PLM(text alone); prompts have no way in
    model, config, tok = load_pretrained(out)
    ds = PreparedDataset(tiny_data / "tiny")
    batch = text_batcher(ds.split("test"), TokenCache.for_dataset(tok, ds, 64))(np.arange(16))
    batch.pop("labels")
    with torch.no_grad():
        out_true = model(**batch)
        out_none = model(**batch, prompt_mode="none")
        q = model.core.ctr.represent(batch["ids"])
        plm_only = model.core.plm.encode(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(out_true["logits"], out_none["logits"])
    torch.testing.assert_close(out_true["logit_ctr"], model.core.ctr.head(q).squeeze(-1))
    pooled = model.core.plm.pool(plm_only, batch["attention_mask"], model.pooling)
    torch.testing.assert_close(out_true["logit_plm"], model.plm_head(pooled).squeeze(-1))
    a = model.alpha
    torch.testing.assert_close(out_true["logits"], a * out_true["logit_ctr"] + (1 - a) * out_true["logit_plm"])


def test_wo_pretrain_starts_from_the_plm_checkpoint(pretrained, tiny_data, tiny_bert, tmp_path):
    ft = _initial(_cfg("finetune-with-plm", tiny_data, tiny_bert), tiny_data, None)
    pre, ckpt = _state(pretrained), _plm_checkpoint_state(tiny_bert)
    compared = [k for k in ckpt if k in ft]  # tied weights are saved under one of their names
    assert len(compared) > 0.9 * len(ckpt)
    for k in compared:
        assert torch.equal(ft[k], ckpt[k]), k  # the language model as published, no PA-MLM
    assert any(k.startswith("core.generator.") for k in ft)  # the prompt interface is kept
    emb = "core.ctr.embedding.embedding.weight"
    assert not torch.equal(ft[emb], pre[emb])  # a fresh CTR model, not the pretrained one


def test_wo_both(tiny_data, tiny_bert, tmp_path):
    out = tmp_path / "wo-both"
    r = finetune(_cfg("finetune-with-plm", tiny_data, tiny_bert, prompt__use_prompts=False), out, pretrained=None,
                 with_plm=True, progress=False)
    assert r["test"]["auc"] is not None and r["pretrained"] is None
    ft, ckpt = _state(out), _plm_checkpoint_state(tiny_bert)
    assert not any(k.startswith("core.generator.") for k in ft)
    assert len(set(ckpt) & set(ft)) > 0.9 * len(ckpt)


def test_wo_layerwise_uses_input_prompts_in_both_stages(tiny_data, tiny_bert, tmp_path):
    pre = tmp_path / "pre-input"
    pretrain(_cfg("pretrain", tiny_data, tiny_bert, prompt__strategy="input"), pre, progress=False)
    out = tmp_path / "ft-input"
    # the finetuning config says layerwise: the architecture comes from the pretraining run
    finetune(_cfg("finetune-with-plm", tiny_data, "unused"), out, pretrained=pre, with_plm=True, progress=False)
    model, config, _ = load_pretrained(out)
    assert config["run_config"]["prompt"]["strategy"] == "input"
    gen = model.core.generator
    assert gen.strategy == "input" and gen.num_nets == config["run_config"]["prompt"]["num_prompts"]
    q = torch.zeros(2, gen.input_dim)
    assert gen(q).shape == (2, gen.num_prompts, model.core.plm.hidden_size)  # (B, K, H) input embeddings


def test_cli_finetune_no_prompts_from_a_pretrained_run(pretrained, tiny_data, tmp_path, capsys):
    rc = cli_main([
        "finetune", "--profile", "tiny", "--dataset", "tiny", "--processed-dir", str(tiny_data),
        "--pretrained", str(pretrained), "--no-prompts", "--max-steps", "2", "--out", str(tmp_path / "cli"), "--quiet",
    ])
    assert rc == 0
    assert not any(k.startswith("core.generator.") for k in _state(tmp_path / "cli"))
    assert "test AUC" in capsys.readouterr().out
