"""What a finetuning takes over from PA-MLM (train.transfer), PA-MLM early stopping, and the per-epoch
PA-MLM diagnostics (clickprompt.diagnostics) that say whether pretraining is learning what transfers."""

from __future__ import annotations

import json

import pytest
import torch

from clickprompt.checkpoint import load_checkpoint
from clickprompt.data.dataset import PreparedDataset
from clickprompt.pipeline import finetune_model, pretrain
from clickprompt.plm import load_plm
from analysis_helpers import tiny_cfg as _cfg
from test_clickprompt_pipeline import tiny_bert, tiny_data  # noqa: F401  (shared module-scoped fixtures)

DIAGNOSTICS = ("valid_mlm_loss", "train_eval_mlm_loss", "generalisation_gap", "value_token_acc_true",
               "value_token_acc_shuffled", "value_token_acc_none")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tiny_data, tiny_bert):
    run = tmp_path_factory.mktemp("runs") / "pretrain"
    pretrain(_cfg("pretrain", tiny_data, tiny_bert, train__epochs=2, train__max_steps=None), run, progress=False)
    return run


def test_every_pretraining_epoch_records_the_diagnostics(pretrained):
    epochs = [json.loads(line) for line in (pretrained / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if "epoch" in r and r.get("kind", "epoch") == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    for r in epochs:
        for key in DIAGNOSTICS:
            assert key in r and r[key] == r[key], key  # present and not NaN
        assert r["generalisation_gap"] == pytest.approx(r["valid_mlm_loss"] - r["train_eval_mlm_loss"])
        assert 0 <= r["value_token_acc_shuffled"] <= 1
    results = json.loads((pretrained / "results.json").read_text())
    best = next(r for r in epochs if r["epoch"] == results["best_epoch"])
    assert results["generalisation_gap"] == pytest.approx(best["generalisation_gap"])
    assert results["valid_mlm_loss"] == pytest.approx(min(r["valid_mlm_loss"] for r in epochs))


def _ds(tiny_data):
    return PreparedDataset(tiny_data / "tiny")


@pytest.mark.parametrize("transfer, taken", [
    ("all", ("ctr.embedding.", "ctr.cross.", "ctr.mlp.", "ctr.head.")),
    ("interaction", ("ctr.embedding.", "ctr.cross.", "ctr.mlp.")),
    ("embeddings", ("ctr.embedding.",)),
])
def test_transfer_without_the_plm_takes_exactly_its_part(pretrained, tiny_data, transfer, taken):
    pre = {k[len("core."):]: v for k, v in load_checkpoint(pretrained / "best")[1].items() if k.startswith("core.ctr.")}
    cfg = _cfg("finetune-without-plm", tiny_data, "unused", train__transfer=transfer)
    model, _ = finetune_model(cfg, _ds(tiny_data), pretrained=pretrained, with_plm=False)
    state = model.state_dict()
    for k, v in pre.items():
        assert torch.equal(state[k], v) == k.startswith(taken), k  # taken over, or freshly initialised


def test_transfer_with_the_plm_keeps_the_published_plm_unless_all(pretrained, tiny_data, tiny_bert):
    pre = load_checkpoint(pretrained / "best")[1]
    published = {f"core.plm.model.{k}": v for k, v in load_plm(str(tiny_bert))[0].state_dict().items()}
    emb = "core.plm.model.bert.embeddings.word_embeddings.weight"
    assert not torch.equal(pre[emb], published[emb])  # PA-MLM moved the PLM
    for transfer, plm_from in (("all", pre), ("interaction", published), ("embeddings", published)):
        cfg = _cfg("finetune-with-plm", tiny_data, "unused", train__transfer=transfer)
        model, _ = finetune_model(cfg, _ds(tiny_data), pretrained=pretrained, with_plm=True)
        state = model.state_dict()
        assert torch.equal(state[emb], plm_from[emb]), transfer
        generator = [k for k in pre if k.startswith("core.generator.")]
        assert all(torch.equal(state[k], pre[k]) for k in generator) == (transfer == "all"), transfer
        assert torch.equal(state["core.ctr.embedding.embedding.weight"], pre["core.ctr.embedding.embedding.weight"])


def test_pretraining_stops_early_on_validation_loss(tiny_data, tiny_bert, tmp_path, monkeypatch):
    from clickprompt import diagnostics

    losses = iter([1.0, 0.9, 1.2, 1.3, 1.4])  # the validation loss turns up after epoch 2

    def rising(*args, **kwargs):
        return lambda model: {"valid_mlm_loss": next(losses), "train_eval_mlm_loss": 0.5, "generalisation_gap": 0.0}

    monkeypatch.setattr(diagnostics, "pretraining_evaluator", rising)
    cfg = _cfg("pretrain", tiny_data, tiny_bert, train__epochs=5, train__max_steps=None, train__pretrain_patience=1)
    r = pretrain(cfg, tmp_path / "pre", progress=False)
    assert (r["epochs_run"], r["best_epoch"], r["valid_mlm_loss"]) == (3, 2, 0.9)
    cfg.train.pretrain_patience = None  # today's default: every epoch runs, the best one is kept
    losses = iter([1.0, 0.9, 1.2, 1.3, 1.4])
    r = pretrain(cfg, tmp_path / "pre-all", progress=False)
    assert (r["epochs_run"], r["best_epoch"]) == (5, 2)
