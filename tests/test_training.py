"""The one training loop: resume after SIGKILL, NaN guard, dataset-fingerprint refusal, checkpoint round
trip, bf16 autocast on CPU, and early stopping that keeps the best weights.

Everything runs on a tiny synthetic MovieLens-like dataset made by `make_tiny_dataset` through the
normal `prepare()` path. Runs that are killed or compared bit for bit go through the real CLI in
subprocesses with one intra-op thread, so the killed run, its resumption and the reference run do the
same floating-point work.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from clickprompt.checkpoint import load_checkpoint
from clickprompt.config import load_config
from clickprompt.ctr import create_ctr
from clickprompt.data.dataset import PreparedDataset
from clickprompt.data.synthetic import make_tiny_dataset
from clickprompt.batching import ctr_batcher
from clickprompt.errors import CheckpointError
from clickprompt.model import CTRClassifier
from clickprompt.pipeline import evaluator, train_ctr
from clickprompt.rundir import RunError
from clickprompt.training import TrainingError, autocast_dtype, predict, read_trainer_meta, train

TINY_CTR = {"ctr.embed_dim": 8, "ctr.dnn_hidden": 32, "ctr.dnn_layers": 2}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("processed")
    make_tiny_dataset(root / "tiny-ml", n=5000, seed=0)
    make_tiny_dataset(root / "tiny-other", n=1500, seed=7)  # another id space: another fingerprint
    return root


def _cfg(data_root: Path, dataset: str = "tiny-ml", **over):
    values = {
        "data.dataset": dataset, "data.processed_dir": str(data_root), "ctr.model": "dcnv2", **TINY_CTR,
        "train.epochs": 3, "train.batch_size": 64, "train.patience": 5, "train.seed": 3, "train.device": "cpu",
        "train.precision": "fp32", **over,
    }
    return load_config(None, values)


def _cli(data_root: Path, out: Path, *extra: str, dataset: str = "tiny-ml", popen: bool = False):
    args = [
        sys.executable, "-m", "clickprompt.cli", "train-ctr", "--dataset", dataset, "--processed-dir", str(data_root),
        "--model", "dcnv2", "--out", str(out), "--epochs", "4", "--batch-size", "32", "--device", "cpu",
        "--precision", "fp32", "--quiet", "--set", "train.seed=11", "--set", "train.patience=10",
        "--set", "train.save_every=2", *[f"--set={k}={v}" for k, v in TINY_CTR.items()], *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if popen:
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


def _records(run: Path, kind: str = "epoch") -> list[dict]:
    """metrics.jsonl's epoch records (or its step records, kind="step"), without the wall-clock seconds."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records if r.get("kind", "epoch") == kind]


# ---------------------------------------------------------------------------------------------- resume


def test_resume_after_sigkill_mid_epoch_matches_an_uninterrupted_run(data_root, tmp_path):
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    full = _cli(data_root, reference, popen=True)  # the uninterrupted run, alongside (one thread each)
    proc = _cli(data_root, killed, popen=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:  # the trainer state is replaced (atomically) at every save
                meta = read_trainer_meta(killed / "state")
            except (OSError, ValueError, CheckpointError):
                meta = None
            if meta and meta["epoch"] >= 2 and meta["step_in_epoch"] > 0:  # in the middle of epoch 3
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed mid-epoch: {proc.returncode}, {proc.stderr.read()}"
    assert not (killed / "results.json").exists()
    meta = read_trainer_meta(killed / "state")  # what --resume will start from
    assert meta["step_in_epoch"] > 0 and meta["epoch"] >= 2, meta

    resumed = _cli(data_root, killed, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" not in resumed.stdout  # --quiet
    assert full.wait(timeout=300) == 0, full.stderr.read()

    a, b = read_trainer_meta(killed / "state"), read_trainer_meta(reference / "state")
    assert a["best_metric"] == b["best_metric"] and a["best_epoch"] == b["best_epoch"]
    assert a["global_step"] == b["global_step"] == 4 * a["history"][0]["step"]
    res_a = json.loads((killed / "results.json").read_text())
    res_b = json.loads((reference / "results.json").read_text())
    assert res_a["valid"]["auc"] == pytest.approx(a["best_metric"], abs=1e-12)  # the best weights were restored
    assert res_a["valid"] == res_b["valid"] and res_a["test"] == res_b["test"]
    assert _records(killed) == _records(reference)  # no duplicated or lost epoch lines, same losses
    steps = _records(reference, "step")  # every train.log_every (50) steps and at each epoch's end
    assert len(steps) >= 4 and _records(killed, "step") == steps  # the step lines too, in order
    lines = (killed / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == sorted(json.loads(x)["step"] for x in lines)

    last_a, last_b = load_file(str(killed / "state" / "trainer.safetensors")), load_file(str(reference / "state" / "trainer.safetensors"))
    assert last_a.keys() == last_b.keys()
    for k in last_a:  # final weights, best weights, optimizer moments and RNG state
        torch.testing.assert_close(last_a[k], last_b[k], rtol=0, atol=0, msg=k)
    best_a, best_b = load_checkpoint(killed / "best")[1], load_checkpoint(reference / "best")[1]
    for k in best_a:
        assert torch.equal(best_a[k], best_b[k]), k


def test_resume_of_a_finished_run_recomputes_nothing_new(data_root, tmp_path):
    cfg = _cfg(data_root, **{"train.epochs": 2})
    first = train_ctr(cfg, tmp_path / "run", progress=False)
    again = train_ctr(cfg, tmp_path / "run", resume=True, progress=False)
    assert again["steps"] == first["steps"] and again["valid"] == first["valid"] and again["test"] == first["test"]
    assert len(_records(tmp_path / "run")) == 2
    # throughput spans the whole run, not the (empty) resumed segment
    assert again["train_samples_per_s"] == first["train_samples_per_s"] > 0


# ---------------------------------------------------------------------------------------------- safety


def test_nan_loss_stops_the_run_naming_the_step(data_root):
    ds = PreparedDataset(data_root / "tiny-ml")
    cfg = _cfg(data_root)
    torch.manual_seed(0)
    model = CTRClassifier(create_ctr("dnn", ds.spec, cfg.ctr))
    base, calls = ctr_batcher(ds.split("train")), {"n": 0}

    def poisoned(idx):  # the 7th batch carries a NaN label, as corrupt data would
        calls["n"] += 1
        batch = base(idx)
        if calls["n"] == 7:
            batch["labels"] = batch["labels"].clone()
            batch["labels"][0] = float("nan")
        return batch

    with pytest.raises(TrainingError, match=r"loss is nan at epoch 1, step 7 \(global step 7\)"):
        train(model, poisoned, len(ds.split("train")), cfg.train, progress=False)


def test_checkpoint_from_other_data_is_refused(data_root, tmp_path):
    run = tmp_path / "run"
    train_ctr(_cfg(data_root, **{"train.epochs": 1}), run, progress=False)
    other = PreparedDataset(data_root / "tiny-other")
    with pytest.raises(CheckpointError, match="fingerprint") as err:
        CTRClassifier.from_pretrained(run / "best", other)
    msg = str(err.value)
    assert "tiny-ml" in msg and other.fingerprint in msg and "ids would not mean the same thing" in msg

    # the finished run is not reused for, nor resumed on, the other dataset; its config.json stays as it was
    config_before = (run / "config.json").read_text()
    cfg = _cfg(data_root, dataset="tiny-other", **{"train.epochs": 1})
    with pytest.raises(RunError, match="finished with other settings.*data.dataset: 'tiny-ml' -> 'tiny-other'"):
        train_ctr(cfg, run, resume=True, progress=False)
    assert (run / "config.json").read_text() == config_before

    # same name, re-prepared from other data (another folder): refused by fingerprint, unfinished or not
    moved = tmp_path / "moved"
    shutil.copytree(data_root / "tiny-other", moved / "tiny-ml")
    with pytest.raises(RunError, match="data_fingerprint"):
        train_ctr(_cfg(moved, **{"train.epochs": 1}), run, progress=False)
    (run / "results.json").unlink()  # killed before it finished: its trainer state is still there
    with pytest.raises(RunError, match="cannot resume with other settings.*data_fingerprint"):
        train_ctr(_cfg(moved, **{"train.epochs": 1}), run, resume=True, progress=False)
    assert (run / "config.json").read_text() == config_before


def test_cli_refuses_resume_on_other_data_with_one_line(data_root, tmp_path):
    run = tmp_path / "run"
    train_ctr(_cfg(data_root, **{"train.epochs": 1}), run, progress=False)
    res = _cli(data_root, run, "--resume", dataset="tiny-other")
    assert res.returncode == 2
    assert res.stderr.startswith("error: ") and "data.dataset" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_resume_into_a_different_model_is_refused(data_root, tmp_path):
    run = tmp_path / "run"
    train_ctr(_cfg(data_root, **{"train.epochs": 1}), run, progress=False)
    (run / "results.json").unlink()  # as if killed: a saved state to resume from
    with pytest.raises(RunError, match="cannot resume with other settings.*ctr.dnn_hidden"):
        train_ctr(_cfg(data_root, **{"train.epochs": 2, "ctr.dnn_hidden": 16}), run, resume=True, progress=False)
    # the trainer's own check stays as a second line of defence (a state that does not fit the model)
    cfg = _cfg(data_root, **{"train.epochs": 2, "ctr.dnn_hidden": 16})
    ds = PreparedDataset(data_root / "tiny-ml")
    model = CTRClassifier(create_ctr("dcnv2", ds.spec, cfg.ctr))
    with pytest.raises(CheckpointError, match="different model"):
        train(model, ctr_batcher(ds.split("train")), len(ds.split("train")), cfg.train, run, resume=True, progress=False)


# ---------------------------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_reproduces_outputs(data_root, tmp_path):
    run = tmp_path / "run"
    res = train_ctr(_cfg(data_root, **{"train.epochs": 2}), run, progress=False)
    for name in ("config.json", "metrics.jsonl", "results.json", "predictions_test.parquet"):
        assert (run / name).exists(), name
    assert sorted(p.name for p in (run / "best").iterdir()) == ["config.json", "manifest.json", "model.safetensors"]

    ds = PreparedDataset(data_root / "tiny-ml")
    model = CTRClassifier.from_pretrained(run / "best", ds)
    assert not model.training
    test = ds.split("test")
    probs = 1 / (1 + np.exp(-predict(model, ctr_batcher(test), len(test), 256)))
    saved = pd.read_parquet(run / "predictions_test.parquet")
    np.testing.assert_array_equal(saved["label"].to_numpy(), test.labels)
    np.testing.assert_allclose(probs, saved["prob"].to_numpy(), rtol=0, atol=1e-6)
    from clickprompt.evaluation import ctr_metrics

    assert ctr_metrics(test.labels, probs)["auc"] == pytest.approx(res["test"]["auc"], abs=1e-9)
    config, _ = load_checkpoint(run / "best")
    assert config["kind"] == "ctr" and config["data_fingerprint"] == ds.fingerprint and config["epoch"] == res["best_epoch"]


# ---------------------------------------------------------------------------------------------- precision


def test_bf16_autocast_on_cpu_trains(data_root, tmp_path):
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    assert autocast_dtype("auto", torch.device("cpu")) is None and autocast_dtype("fp32", torch.device("cpu")) is None
    ds = PreparedDataset(data_root / "tiny-ml")
    cfg = _cfg(data_root, **{"train.epochs": 2, "train.precision": "bf16"})
    torch.manual_seed(0)
    model = CTRClassifier(create_ctr("dcnv2", ds.spec, cfg.ctr))
    seen = set()
    model.ctr.mlp.net[0].register_forward_hook(lambda m, i, o: seen.add(o.dtype))
    result = train(model, ctr_batcher(ds.split("train")), len(ds.split("train")), cfg.train,
                   evaluate=evaluator(ctr_batcher(ds.split("valid")), ds.split("valid"), cfg), progress=False)
    assert torch.bfloat16 in seen  # the matmuls really ran in bf16
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert all(np.isfinite(r["train_loss"]) for r in result.history)
    assert result.best_metric > 0.6  # it learns (the fp32 run reaches about 0.7 here)


# ---------------------------------------------------------------------------------------------- early stopping


def test_early_stopping_keeps_the_best_weights(data_root, tmp_path):
    # a high learning rate overfits the tiny data within a few epochs, so validation AUC peaks early
    cfg = _cfg(data_root, **{"train.epochs": 30, "train.patience": 2, "train.lr": 0.01, "ctr.dropout": 0.0})
    run = tmp_path / "run"
    res = train_ctr(cfg, run, progress=False)
    history = _records(run)
    aucs = [r["valid_auc"] for r in history]
    assert res["stopped_early"] and len(history) < 30
    assert res["best_epoch"] == int(np.argmax(aucs)) + 1 == len(history) - 2  # stopped `patience` epochs later
    assert res["valid"]["auc"] == pytest.approx(max(aucs), abs=1e-12)  # the returned model is the best one
    meta = read_trainer_meta(run / "state")
    best = load_checkpoint(run / "best")[1]
    final = load_file(str(run / "state" / "trainer.safetensors"))
    assert any(not torch.equal(final[f"model.{k}"], v) for k, v in best.items())  # the last epoch differs
    for k, v in best.items():
        assert torch.equal(final[f"best.{k}"], v)
    assert meta["best_metric"] == pytest.approx(max(aucs))


def test_group_by_length_order_is_a_permutation_of_length_sorted_batches():
    from clickprompt.training import epoch_order

    rng = np.random.default_rng(3)
    n, batch = 1003, 16
    lengths = rng.integers(20, 80, n)
    plain = epoch_order(n, 7, 2)
    order = epoch_order(n, 7, 2, lengths, batch, megabatch=8)
    assert sorted(order.tolist()) == list(range(n))  # every sample exactly once
    assert np.array_equal(order, epoch_order(n, 7, 2, lengths, batch, megabatch=8))  # a function of (seed, epoch)
    assert not np.array_equal(order, epoch_order(n, 7, 3, lengths, batch, megabatch=8))
    # the last, partial batch stays last: the first n // batch batches are full and sliceable
    assert set(order[(n // batch) * batch :]) <= set(plain[(n // (8 * batch)) * 8 * batch :])

    def padded_tokens(o):
        return sum(len(b) * lengths[b].max() for b in np.array_split(o, range(batch, n, batch)))

    assert padded_tokens(order) < 0.8 * padded_tokens(plain)  # much less padding than random batches
    def median_spread(o):  # a batch's longest minus shortest sample
        return np.median([np.ptp(lengths[o[s : s + batch]]) for s in range(0, (n // batch) * batch, batch)])

    # a megabatch of 8 batches spans the whole 20..79 range, so a batch spans about 60 / 8
    assert median_spread(order) <= 10 < 40 < median_spread(plain)


def test_group_by_length_changes_nothing_for_ctr_batches(data_root, tmp_path):
    """CTR batches carry no token lengths: the option leaves the order and hence the run unchanged."""
    results = [
        train_ctr(_cfg(data_root, **{"train.epochs": 1, "train.group_by_length": flag}), tmp_path / f"g{flag}", progress=False)
        for flag in (False, True)
    ]
    assert results[0]["test"]["auc"] == results[1]["test"]["auc"]


def test_trainer_groups_batches_by_the_batchers_lengths(data_root):
    """With train.group_by_length the loop draws its batches from the batcher's `lengths`."""
    ds = PreparedDataset(data_root / "tiny-ml")
    n = len(ds.split("train"))
    base = ctr_batcher(ds.split("train"))
    lengths = np.random.default_rng(0).integers(10, 60, n)
    spreads = {}
    for flag in (False, True):
        seen = []

        def make_batch(idx):
            seen.append(np.ptp(lengths[idx]))
            return base(idx)

        make_batch.lengths = lengths
        torch.manual_seed(0)
        model = CTRClassifier(create_ctr("dnn", ds.spec, _cfg(data_root).ctr))
        train(model, make_batch, n, _cfg(data_root, **{"train.epochs": 1, "train.group_by_length": flag}).train, progress=False)
        spreads[flag] = np.median(seen)
    assert spreads[True] <= 2 < 20 < spreads[False]


def test_predict_feeds_text_batches_by_length_and_returns_sample_order():
    from clickprompt.training import predict

    lengths = np.random.default_rng(1).integers(5, 50, 203)
    seen = []

    def make_batch(idx):
        seen.append(lengths[idx])
        return {"x": torch.as_tensor(idx, dtype=torch.float32)}

    make_batch.lengths = lengths

    class Double(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            return {"logits": 2 * x * self.w}

    out = predict(Double(), make_batch, 203, batch_size=16)
    np.testing.assert_array_equal(out, 2 * np.arange(203))  # sample order, every sample once
    assert all(np.ptp(b) <= 4 for b in seen[:-1])  # batches of similar length
    del make_batch.lengths
    np.testing.assert_array_equal(predict(Double(), make_batch, 203, batch_size=16), 2 * np.arange(203))
