"""Data-parallel training: `torchrun --nproc_per_node 2` with the gloo backend on CPU gives the same
metrics as one process.

Each rank takes every other sample of each global batch and the loss is weighted so that DDP's
gradient average equals the one-process gradient of the whole batch; the models start from the same
seed. The runs use dropout 0: with dropout the two layouts draw different masks (a (B/2, H) mask per
rank instead of one (B, H) mask), which is a different but equally valid random trajectory, not
the same one. What remains is floating-point summation order (measured differences ~1e-7), hence
a small tolerance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clickprompt.data.synthetic import make_tiny_dataset

ARGS = [
    "train-ctr", "--model", "dcnv2", "--epochs", "3", "--batch-size", "64", "--device", "cpu", "--precision", "fp32",
    "--quiet", "--set", "train.seed=5", "--set", "train.patience=10", "--set", "ctr.dropout=0.0",
    "--set", "ctr.embed_dim=8", "--set", "ctr.dnn_hidden=32", "--set", "ctr.dnn_layers=2",
]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("processed")
    make_tiny_dataset(root / "tiny-ml", n=4000, seed=1)
    return root


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_two_gloo_processes_match_one_process(data_root, tmp_path):
    common = ["--dataset", "tiny-ml", "--processed-dir", str(data_root)]
    ddp = _run([
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "clickprompt.cli", *ARGS, *common, "--out", str(tmp_path / "ddp"),
    ])
    assert ddp.returncode == 0, ddp.stdout[-2000:] + ddp.stderr[-4000:]
    single = _run([sys.executable, "-m", "clickprompt.cli", *ARGS, *common, "--out", str(tmp_path / "single")])
    assert single.returncode == 0, single.stderr[-4000:]

    a = json.loads((tmp_path / "ddp" / "results.json").read_text())
    b = json.loads((tmp_path / "single" / "results.json").read_text())
    assert a["steps"] == b["steps"] and a["epochs_run"] == b["epochs_run"] == 3
    for split in ("valid", "test"):
        assert a[split]["auc"] == pytest.approx(b[split]["auc"], abs=1e-4), split
        assert a[split]["logloss"] == pytest.approx(b[split]["logloss"], abs=1e-4), split
    # one metrics file, written once (by rank 0), per-epoch validation AUC tracking the single process
    lines_a = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    lines_b = [json.loads(x) for x in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    ma, mb = ([r for r in lines if r.get("kind", "epoch") == "epoch"] for lines in (lines_a, lines_b))
    assert len(ma) == len(mb) == 3
    sa, sb = ([r for r in lines if r.get("kind") == "step"] for lines in (lines_a, lines_b))
    assert [r["step"] for r in sa] == [r["step"] for r in sb] and sa  # step records, averaged over both ranks
    for ra, rb in zip(sa, sb):
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], abs=1e-3)
    for ra, rb in zip(ma, mb):
        assert ra["valid_auc"] == pytest.approx(rb["valid_auc"], abs=1e-4)
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], abs=1e-3)  # averaged over both ranks
    assert (tmp_path / "ddp" / "best" / "model.safetensors").exists()
