"""The PLM baselines under `torchrun --nproc_per_node 2` (gloo, CPU) give the metrics of one process:
CTR-BERT, and PTab's two stages (MLM with PA-MLM's per-sample hashed masking, then the classifier).

Why they agree, as for the ClickPrompt stages (tests/test_ddp_clickprompt.py): each rank takes its share
of every global batch and the loss is weighted so that DDP's gradient average is the one-process batch
mean (clickprompt.training), masking is a pure function of (seed, epoch, sample), and dropout is off (a
tiny BERT built with dropout 0). What remains is floating-point summation order, hence a tolerance.
CTRL's InfoNCE is not compared: under DDP each process contrasts its own half of the batch (fewer
negatives), a different objective by design (clickprompt.baselines.ctrl).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from clickprompt.data.synthetic import make_tiny_dataset
from clickprompt.plm.tiny import make_tiny_plm
from clickprompt.rundir import RunDir


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("method", ["ctr-bert", "ptab"])
def test_two_gloo_processes_match_one_process(tmp_path, method):
    data = tmp_path / "processed"
    make_tiny_dataset(data / "tiny-ml", n=1500, seed=1)
    plm = make_tiny_plm(tmp_path / "bert", "bert", dropout=0.0)
    args = ["baseline", method, "--profile", "tiny", "--dataset", "tiny-ml", "--processed-dir", str(data),
            "--plm", str(plm), "--device", "cpu", "--precision", "fp32", "--quiet"]
    for s in ("train.epochs=1", "train.batch_size=32", "train.grad_accum=1", "train.max_steps=5", "train.lr=0.001",
              "train.seed=3", "train.save_every=0"):
        args += ["--set", s]
    ddp = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "clickprompt.cli", *args, "--out", str(tmp_path / "ddp")])
    assert ddp.returncode == 0, ddp.stdout[-2000:] + ddp.stderr[-4000:]
    single = _run([sys.executable, "-m", "clickprompt.cli", *args, "--out", str(tmp_path / "single")])
    assert single.returncode == 0, single.stderr[-4000:]

    final = "ctr-bert" if method == "ctr-bert" else "ptab-finetune"
    sub = "" if method == "ctr-bert" else final
    a = json.loads((tmp_path / "ddp" / sub / "results.json").read_text())
    b = json.loads((tmp_path / "single" / sub / "results.json").read_text())
    assert a["stage"] == b["stage"] == final and a["steps"] == b["steps"] == 5
    for split in ("valid", "test"):  # (an AUC of near-constant scores flips with one tied pair: compare the scores)
        assert a[split]["logloss"] == pytest.approx(b[split]["logloss"], abs=1e-4), split
    pa, pb = (RunDir(tmp_path / x / sub).read_predictions()[1] for x in ("ddp", "single"))
    assert np.abs(pa - pb).max() < 1e-4
    if method == "ptab":
        pa = json.loads((tmp_path / "ddp" / "ptab-pretrain" / "results.json").read_text())
        pb = json.loads((tmp_path / "single" / "ptab-pretrain" / "results.json").read_text())
        assert pa["valid_mlm_loss"] == pytest.approx(pb["valid_mlm_loss"], abs=1e-4)
        assert json.loads((tmp_path / "ddp" / sub / "config.json").read_text())["pretrained"] == str(
            tmp_path / "ddp" / "ptab-pretrain")
