"""The GPU speed path, checked on the CPU: losses read from the device only at log points (StepLosses),
torch.compile behind train.compile, static text-batch widths (data.pad_to_multiple) that change nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clickprompt.training import StepLosses, TrainingError


def test_losses_read_in_one_go_land_in_order_and_name_the_bad_step():
    running = []
    losses = StepLosses(running, every=4)
    for s in range(3):
        losses.add(torch.tensor(float(s), dtype=torch.float64), 0, s, s)
    assert running == [] and len(losses.pending) == 3  # nothing read from the device yet
    losses.flush()
    assert running == [0.0, 1.0, 2.0] and not losses.pending
    losses.add(torch.tensor(1.5), 1, 0, 3)
    losses.add(torch.tensor(float("nan")), 1, 1, 4)
    with pytest.raises(TrainingError, match=r"loss is nan at epoch 2, step 2 \(global step 5\)"):
        losses.flush()
    cpu = StepLosses([], every=1)  # on a CPU every step is read at once: the error comes at that step
    with pytest.raises(TrainingError, match=r"global step 1\)"):
        cpu.add(torch.tensor(float("inf")), 0, 0, 0)


def test_compile_switch_trains_through_torch_compile(monkeypatch, tmp_path):
    from clickprompt.batching import ctr_batcher
    from clickprompt.config import load_config
    from clickprompt.ctr import create_ctr
    from clickprompt.data.dataset import PreparedDataset
    from clickprompt.data.synthetic import make_tiny_dataset
    from clickprompt.model import CTRClassifier
    from clickprompt.training import train

    ds = PreparedDataset(make_tiny_dataset(tmp_path / "tiny-ml", n=600))
    compiled = []

    def fake_compile(module, **_):  # torch.compile's contract: a callable with the module's behaviour
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    results = {}
    for flag in (False, True):
        cfg = load_config(None, {"train.epochs": 1, "train.batch_size": 64, "train.compile": flag, "train.device": "cpu"})
        torch.manual_seed(0)
        model = CTRClassifier(create_ctr("dcnv2", ds.spec, cfg.ctr))
        results[flag] = train(model, ctr_batcher(ds.split("train")), len(ds.split("train")), cfg.train, progress=False)
    assert len(compiled) == 1 and isinstance(compiled[0], CTRClassifier)
    assert results[True].history[0]["train_loss"] == results[False].history[0]["train_loss"]


def test_padding_to_a_multiple_changes_widths_not_outputs(tmp_path):
    from clickprompt.config import RunConfig
    from clickprompt.data.dataset import PreparedDataset
    from clickprompt.data.synthetic import make_tiny_dataset
    from clickprompt.data.text import TokenCache
    from clickprompt.model import ClickPromptForCTR, build_clickprompt
    from clickprompt.plm.tiny import make_tiny_plm

    ds = PreparedDataset(make_tiny_dataset(tmp_path / "tiny-ml", n=600))
    cfg = RunConfig()
    cfg.plm.name, cfg.prompt.num_prompts = str(make_tiny_plm(tmp_path / "bert", "bert")), 2
    core, tok, _ = build_clickprompt(cfg, ds.spec)
    model = ClickPromptForCTR(core).eval()
    split = ds.split("test")
    rows = split.text_index[:24]
    plain = TokenCache.for_dataset(tok, ds, 64).assemble(rows, with_fields=True)
    padded = TokenCache.for_dataset(tok, ds, 64, pad_to_multiple=16).assemble(rows, with_fields=True)
    T = plain["input_ids"].shape[1]
    assert padded["input_ids"].shape[1] % 16 == 0 and padded["input_ids"].shape[1] >= T
    for k in plain:  # the real positions are the same, the extra ones are masked padding
        np.testing.assert_array_equal(padded[k][:, :T], plain[k])
    assert not padded["attention_mask"][:, T:].any() and (padded["token_field"][:, T:] == -1).all()
    ids = torch.from_numpy(split.ids[:24])
    with torch.no_grad():
        a = model(ids, torch.from_numpy(plain["input_ids"]), torch.from_numpy(plain["attention_mask"]))["logits"]
        b = model(ids, torch.from_numpy(padded["input_ids"]), torch.from_numpy(padded["attention_mask"]))["logits"]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_device_batches_give_the_same_pretraining_and_finetuning(tmp_path):
    """train.device_batches (text batches gathered on the training device, here the CPU) reproduces the host
    path exactly: the same PA-MLM losses and diagnostics, the same with-PLM predictions."""
    from clickprompt.config import load_stage_config
    from clickprompt.data.synthetic import make_tiny_dataset
    from clickprompt.pipeline import finetune, pretrain
    from clickprompt.plm.tiny import make_tiny_plm
    from clickprompt.rundir import RunDir

    make_tiny_dataset(tmp_path / "data" / "tiny-ml", n=600, seed=0)
    plm = make_tiny_plm(tmp_path / "bert", "bert")

    def cfg(stage, on):
        c = load_stage_config("tiny", stage)
        c.data.dataset, c.data.processed_dir, c.plm.name = "tiny-ml", str(tmp_path / "data"), str(plm)
        c.train.device, c.train.device_batches = "cpu", on
        return c

    out = {}
    for on in (False, True):
        pre = pretrain(cfg("pretrain", on), tmp_path / f"pre-{on}", progress=False)
        ft = finetune(cfg("finetune-with-plm", on), tmp_path / f"ft-{on}", pretrained=tmp_path / f"pre-{on}",
                      with_plm=True, progress=False)
        out[on] = (pre, ft, RunDir(tmp_path / f"ft-{on}").read_predictions()[1])
    (pre0, ft0, p0), (pre1, ft1, p1) = out[False], out[True]
    for k in ("valid_mlm_loss", "value_token_acc_true", "value_token_acc_shuffled", "value_token_acc_none"):
        assert pre0[k] == pre1[k], k
    assert ft0["test"]["auc"] == ft1["test"]["auc"]
    np.testing.assert_array_equal(p0, p1)
