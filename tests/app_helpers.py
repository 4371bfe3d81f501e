"""Runs for the dashboard tests (tests/test_app.py, tests/test_browser.py)."""

from __future__ import annotations

from pathlib import Path

from clickprompt.data.synthetic import make_tiny_dataset
from clickprompt.pipeline import quick
from clickprompt.plm.tiny import make_tiny_plm

RUN_NAMES = ["ctr", "finetune-with-plm", "finetune-without-plm", "pretrain"]
TABS = ["Runs", "Training curves", "Score samples", "Soft-prompt attention", "Attributions", "Long tail", "Latency"]


def build_tiny_runs(root: Path) -> Path:
    """A DCNv2 baseline, PA-MLM, finetuning without and with a tiny random BERT: `quick` on tiny data
    (600 interactions, the "tiny" profile: seconds on a CPU). Returns the runs root."""
    root = Path(root)
    make_tiny_dataset(root / "processed" / "tiny-ml", n=600, seed=0)
    plm = make_tiny_plm(root / "plm", "bert")
    quick("tiny-ml", root / "runs", profile="tiny", processed_dir=root / "processed", plm=str(plm), progress=False)
    return root / "runs"


def shared_tiny_runs(tmp_path_factory) -> Path:
    """build_tiny_runs once per test session (test_app.py and test_browser.py both use it; neither
    writes into it: a test that damages a run works on a copy)."""
    root = tmp_path_factory.getbasetemp() / "shared-tiny-runs"
    if not (root / "runs" / "finetune-with-plm" / "results.json").exists():
        return build_tiny_runs(root)
    return root / "runs"


def damage_weights(run: Path) -> Path:
    """Zero 4 KiB in the middle of a run's best weights (the manifest check then fails); returns the file."""
    weights = Path(run) / "best" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = bytes(4096)
    weights.write_bytes(bytes(data))
    return weights
