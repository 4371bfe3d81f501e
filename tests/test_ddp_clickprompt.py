"""PA-MLM pretraining and finetuning with the PLM under `torchrun --nproc_per_node 2` (gloo, CPU) give the
metrics of one process, and only rank 0 writes into the run directories.

Why the two agree: each rank takes its share of every global batch and the loss is weighted so that
DDP's gradient average equals the one-process batch mean (clickprompt.training); the PA-MLM masking of
a sample is a pure function of (seed, epoch, sample index) (clickprompt.masking.hashed_uniforms), so
every sample is masked alike whatever process holds it; and dropout is off here (the tiny PLM is built
with dropout 0 and ctr.dropout = 0), the one source of randomness that depends on the process split.
What remains is floating-point summation order, hence a small tolerance.

Rank 1 records, with a Python audit hook, every file it opens for writing or renames under the run
directory: the list must stay empty.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clickprompt.data.prepare import prepare
from clickprompt.plm.tiny import make_tiny_plm
from test_clickprompt_pipeline import TinySource

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path

    import torch.distributed  # noqa: F401  (heavy imports before the audit hook, which sees every open)
    import transformers  # noqa: F401
    from clickprompt.config import load_stage_config
    from clickprompt.pipeline import finetune, pretrain


    def job(data_root, plm_dir, out, rank=0):
        out = Path(out)
        writes = []
        if rank != 0:
            root = str(out.resolve())

            def hook(event, args):  # files rank 1 writes, renames, creates or deletes under the run directory
                if event == "open":
                    path, mode, flags = args
                    if isinstance(path, (str, bytes, os.PathLike)) and (
                        any(c in str(mode or "") for c in "wax+") or (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
                    ) and os.path.abspath(str(path)).startswith(root):
                        writes.append((event, str(path)))
                elif event in ("os.rename", "os.mkdir", "os.remove", "shutil.rmtree", "os.symlink"):
                    if os.path.abspath(str(args[0])).startswith(root):
                        writes.append((event, str(args[0])))

            sys.addaudithook(hook)

        def cfg(stage):
            c = load_stage_config("tiny", stage)
            c.data.dataset, c.data.processed_dir, c.plm.name = "tiny", str(data_root), str(plm_dir)
            c.ctr.dropout = 0.0
            c.train.batch_size = 16  # 8 per rank
            c.train.precision = "fp32"
            return c

        pre = pretrain(cfg("pretrain"), out / "pre", progress=False)
        ft = finetune(cfg("finetune-with-plm"), out / "ft", pretrained=out / "pre", with_plm=True, progress=False)
        if rank != 0:
            (out.parent / f"writes-rank{rank}.json").write_text(json.dumps(writes))  # outside the run directory
        return pre, ft


    if __name__ == "__main__":
        job(*sys.argv[1:4], rank=int(os.environ.get("RANK", "0")))
''')


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    prepare("tiny", root / "processed", root / "processed" / "tiny", source=TinySource())
    plm = make_tiny_plm(root / "bert", "bert", dropout=0.0)
    (root / "script.py").write_text(SCRIPT)
    return root


def _run(setup: Path, nproc: int) -> Path:
    work = setup / f"np{nproc}"
    work.mkdir()
    if nproc == 1:  # the reference: one process, here (no interpreter start-up to pay twice)
        runpy.run_path(str(setup / "script.py"))["job"](setup / "processed", setup / "bert", work / "runs")
        return work
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(setup / "script.py"), str(setup / "processed"), str(setup / "bert"), str(work / "runs")]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work


def test_two_processes_match_one(setup):
    one, two = _run(setup, 1), _run(setup, 2)
    for stage in ("pre", "ft"):
        a = json.loads((one / "runs" / stage / "results.json").read_text())
        b = json.loads((two / "runs" / stage / "results.json").read_text())
        assert a["steps"] == b["steps"] == 4
        if stage == "pre":
            keys = ["valid_mlm_loss", "value_token_acc_true", "value_token_acc_shuffled", "value_token_acc_none"]
            pairs = [(a[k], b[k]) for k in keys]
        else:
            pairs = [(a[s][m], b[s][m]) for s in ("valid", "test") for m in ("auc", "logloss")] + [(a["alpha"], b["alpha"])]
        for x, y in pairs:  # summation order differs, and Adam amplifies it where a gradient is near 0
            assert x == pytest.approx(y, rel=1e-4, abs=2e-4), (stage, pairs)
    # the same per-epoch history, and the same best checkpoint
    for stage in ("pre", "ft"):
        ha = [json.loads(l) for l in (one / "runs" / stage / "metrics.jsonl").read_text().splitlines()]
        hb = [json.loads(l) for l in (two / "runs" / stage / "metrics.jsonl").read_text().splitlines()]
        assert len(ha) == len(hb)
        for ra, rb in zip(ha, hb):
            assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-4, abs=2e-4)


def test_only_rank_zero_writes(setup):
    two = setup / "np2"
    if not two.exists():
        two = _run(setup, 2)
    assert json.loads((two / "writes-rank1.json").read_text()) == []
    for stage in ("pre", "ft"):  # and rank 0 wrote a complete run directory
        d = two / "runs" / stage
        assert {"config.json", "results.json", "metrics.jsonl", "predictions_test.parquet" if stage == "ft" else "tokenizer"} <= {
            p.name for p in d.iterdir()}
        assert (d / "best" / "model.safetensors").exists()
