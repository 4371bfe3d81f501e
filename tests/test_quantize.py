"""CPU inference with the PLM in int8 (clickprompt.quantize), and no graph for a frozen PLM that no prompt
reaches (a w/o Prompt finetuning with plm_lr 0)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from clickprompt.cli import main as cli
from clickprompt.config import RunConfig
from clickprompt.data.schema import FeatureSpec
from clickprompt.model import ClickPromptForCTR, build_clickprompt
from clickprompt.plm.tiny import make_tiny_plm
from clickprompt.quantize import int8_linear_count, quantize_plm


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    plm = make_tiny_plm(tmp_path_factory.mktemp("q") / "bert", "bert")
    cfg = RunConfig()
    cfg.plm.name, cfg.prompt.num_prompts = str(plm), 2
    torch.manual_seed(0)
    core, tok, _ = build_clickprompt(cfg, FeatureSpec.synthetic([5, 7]))
    enc = tok(["User ID is 3 . Title is heat ."] * 4 + ["User ID is 4 ."] * 4, return_tensors="pt", padding=True)
    return ClickPromptForCTR(core).eval(), cfg, (torch.tensor([[1, 2]] * 4 + [[3, 0]] * 4), enc["input_ids"],
                                                 enc["attention_mask"])


def test_int8_replaces_the_plm_linears_only_and_stays_close(tiny_model):
    model, _, batch = tiny_model
    q = quantize_plm(model)
    n_plm_linears = sum(isinstance(m, torch.nn.Linear) for m in model.core.plm.modules())
    assert int8_linear_count(model) == 0 and int8_linear_count(q) == n_plm_linears > 0
    assert q is not model and int8_linear_count(model) == 0  # the original is untouched
    for k, v in model.core.ctr.state_dict().items():  # the CTR model and generator stay fp32 and identical
        assert torch.equal(q.core.ctr.state_dict()[k], v)
    for k, v in model.core.generator.state_dict().items():
        assert torch.equal(q.core.generator.state_dict()[k], v)
    with torch.no_grad():
        a, b = model(*batch)["logits"], q(*batch)["logits"]
    assert torch.allclose(a, b, atol=0.05) and not torch.equal(a, b)


def test_frozen_plm_without_prompts_builds_no_graph(tiny_model):
    _, cfg, (ids, input_ids, mask) = tiny_model
    cfg.prompt.use_prompts = False
    core, _, _ = build_clickprompt(cfg, FeatureSpec.synthetic([5, 7]))
    for p in core.plm.parameters():
        p.requires_grad_(False)  # what train.plm_lr = 0 does
    _, hidden = core(ids, input_ids, mask)
    assert hidden.grad_fn is None  # no activations kept for a backward pass
    for p in core.plm.parameters():
        p.requires_grad_(True)
    _, hidden = core(ids, input_ids, mask)
    assert hidden.grad_fn is not None
    cfg.prompt.use_prompts = True
    core, _, _ = build_clickprompt(cfg, FeatureSpec.synthetic([5, 7]))
    for p in core.plm.parameters():
        p.requires_grad_(False)
    q, hidden = core(ids, input_ids, mask)  # prompts reach the frozen PLM: the generator needs its gradient
    hidden.sum().backward()
    assert core.generator.w1.grad is not None and core.generator.w1.grad.abs().sum() > 0


def test_evaluate_and_latency_take_int8_and_bf16(tmp_path, capsys):
    from clickprompt.data.synthetic import make_tiny_dataset

    data = tmp_path / "data"
    make_tiny_dataset(data / "tiny-ml", n=600, seed=0)
    plm = make_tiny_plm(tmp_path / "bert", "bert")
    base = ["--profile", "tiny", "--dataset", "tiny-ml", "--processed-dir", str(data), "--quiet"]
    run = tmp_path / "ft"
    assert cli(["finetune", *base, "--plm", str(plm), "--out", str(run)]) == 0
    capsys.readouterr()
    results = {}
    for flag in ([], ["--int8"], ["--bf16"]):
        assert cli(["evaluate", str(run), *flag]) == 0
        r = json.loads(capsys.readouterr().out)
        results["int8" if r["int8"] else "bf16" if r["bf16"] else "fp32"] = r["auc"]
    assert set(results) == {"fp32", "int8", "bf16"}
    assert abs(results["int8"] - results["fp32"]) < 0.05 and abs(results["bf16"] - results["fp32"]) < 0.05
    assert cli(["analyse", "latency", f"fp32={run}", f"int8={run}", "--int8", "int8", "--repeats", "2",
                "--warmup", "1", "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "fp32" in out and "int8" in out
    assert cli(["analyse", "latency", f"fp32={run}", "--int8", "nope"]) == 2
    assert "--int8 names ['nope']" in capsys.readouterr().err
