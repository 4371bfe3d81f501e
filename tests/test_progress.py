"""Honest progress and what a run records while it trains (clickprompt.progress, training.train):

- a bar's total is the steps that will really run (train.max_steps caps included) and it ends full;
- off a terminal, a line every train.log_every steps instead of carriage-return frames;
- banners say what runs and what stops it, and how a run ended (early stopping announced with why);
- step records in metrics.jsonl every train.log_every steps, for every stage including PA-MLM;
- TensorBoard event files beside them, which change nothing in the numbers;
- in a notebook, tqdm renders as a widget (ipywidgets installed: no "IProgress not found")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from clickprompt.config import load_config
from clickprompt.data.synthetic import make_tiny_dataset

TINY_CTR = {"ctr.model": "dcnv2", "ctr.embed_dim": 8, "ctr.dnn_hidden": 16, "ctr.dnn_layers": 1}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("processed")
    make_tiny_dataset(root / "tiny-ml", n=1200, seed=0)  # 738 training rows: 12 steps of 64
    return root


@pytest.fixture(scope="module")
def spe(data_root) -> int:
    """Optimizer steps per epoch (batches of 64)."""
    from clickprompt.data.dataset import PreparedDataset

    return -(-len(PreparedDataset(data_root / "tiny-ml").split("train")) // 64)


def _cfg(data_root: Path, **over):
    return load_config(None, {"data.dataset": "tiny-ml", "data.processed_dir": str(data_root), **TINY_CTR,
                              "train.epochs": 3, "train.batch_size": 64, "train.seed": 1, "train.device": "cpu",
                              "train.precision": "fp32", "train.log_every": 5, "train.patience": 5, **over})


class RecordingBar:
    """Stands in for tqdm: remembers each bar's total and how far it got."""

    bars: list = []

    def __init__(self, total=None, initial=0, **kwargs):
        self.total, self.n = total, initial
        RecordingBar.bars.append(self)

    def update(self, n=1):
        self.n += n

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass

    @staticmethod
    def write(text, file=None):
        print(text, file=file)


@pytest.mark.parametrize("max_steps", [None, 7, 20])
def test_bar_total_is_the_steps_that_will_run(data_root, spe, tmp_path, monkeypatch, max_steps):
    import tqdm.auto

    from clickprompt.pipeline import train_ctr

    expected = {None: [spe] * 3, 7: [7], 20: [spe, 20 - spe]}[max_steps]

    monkeypatch.setenv("CLICKPROMPT_PROGRESS", "bar")
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    RecordingBar.bars = []
    res = train_ctr(_cfg(data_root, **{"train.max_steps": max_steps}), tmp_path / "run", progress=True)
    assert [b.total for b in RecordingBar.bars] == expected  # PA-MLM showed 27/911 and stopped at 100
    assert all(b.n == b.total for b in RecordingBar.bars)  # every bar ends full
    assert res["steps"] == sum(expected)


def test_lines_off_a_terminal_banner_and_how_it_ended(data_root, spe, tmp_path, capsys, monkeypatch):
    from clickprompt.pipeline import train_ctr

    monkeypatch.delenv("CLICKPROMPT_PROGRESS", raising=False)  # capsys is not a terminal: lines mode
    train_ctr(_cfg(data_root, **{"train.max_steps": 7, "train.epochs": 2}), tmp_path / "run", progress=True)
    out, err = capsys.readouterr()
    assert "\r" not in err and "\r" not in out  # no carriage-return frames in a log file
    lines = [l for l in err.splitlines() if l.startswith("[train-ctr] epoch 1/2 · step")]
    assert [re.search(r"step (\d+)/(\d+)", l).groups() for l in lines] == [("5", "7"), ("7", "7")]
    assert f"7 optimizer steps (2 epochs of {spe} steps, capped at 7 by train.max_steps) of 64 samples" in out
    assert "after each epoch: validation (valid_auc, higher is better" in out
    assert re.search(r"\[train-ctr\] epoch 1/2 \(step 7\): train loss \d\.\d{4} · valid AUC \d\.\d{4} \(best so far\)", out)
    assert "{" not in out  # stats are a readable line, not a raw dict
    assert "[train-ctr] stopped at step 7 in epoch 1 (train.max_steps = 7); best epoch 1 (valid_auc " in out


def test_early_stopping_is_announced_with_its_reason(data_root, tmp_path, capsys, monkeypatch):
    from clickprompt.pipeline import train_ctr

    monkeypatch.setenv("CLICKPROMPT_PROGRESS", "lines")
    # a high learning rate overfits the tiny data at once: validation AUC peaks early
    res = train_ctr(_cfg(data_root, **{"train.epochs": 30, "train.patience": 1, "train.lr": 0.05, "ctr.dropout": 0.0}),
                    tmp_path / "run", progress=True)
    out = capsys.readouterr().out
    assert res["stopped_early"]
    line = next(l for l in out.splitlines() if "stopped early" in l)
    assert (f"stopped early after epoch {res['epochs_run']}: no better valid_auc for 1 epoch (patience 1); "
            f"best epoch {res['best_epoch']} (valid_auc {res['valid']['auc']:.4f}), its weights kept") in line
    assert "stops early after 1 epoch without a better valid_auc" in out  # said up front too


def test_step_records_beside_unchanged_epoch_records(data_root, spe, tmp_path):
    from clickprompt.pipeline import train_ctr

    run = tmp_path / "run"
    train_ctr(_cfg(data_root), run, progress=False)
    records = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = [r for r in records if r.get("kind", "epoch") == "epoch"]
    assert [set(r) for r in epochs] == [{"epoch", "step", "train_loss", "valid_auc", "valid_logloss", "elapsed_s"}] * 3
    # every 5 steps, plus each epoch's last steps since the previous record (12 per epoch: 5 10 12 | 15 20 24 | ...)
    expected = sorted(set(range(5, 3 * spe + 1, 5)) | {spe, 2 * spe, 3 * spe})
    assert [r["step"] for r in steps] == expected
    assert [r["epoch"] for r in steps] == [(s - 1) // spe + 1 for s in expected]
    assert all(set(r) == {"kind", "epoch", "step", "train_loss", "lr", "elapsed_s"} for r in steps)
    assert [r["step"] for r in records] == sorted(r["step"] for r in records)  # in the order they happened


def test_tensorboard_events_and_they_change_nothing(data_root, spe, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from clickprompt.checkpoint import load_checkpoint
    from clickprompt.pipeline import train_ctr

    on = train_ctr(_cfg(data_root), tmp_path / "on", progress=False)
    events = EventAccumulator(str(tmp_path / "on" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "epoch/valid_auc", "epoch/train_loss"} <= tags
    assert [e.step for e in events.Scalars("epoch/valid_auc")] == [spe, 2 * spe, 3 * spe]
    metrics = [json.loads(l) for l in (tmp_path / "on" / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(
        [r["train_loss"] for r in metrics if r.get("kind") == "step"], rel=1e-6)
    monkeypatch.setenv("CLICKPROMPT_TENSORBOARD", "0")
    off = train_ctr(_cfg(data_root), tmp_path / "off", progress=False)
    assert not (tmp_path / "off" / "tensorboard").exists()
    assert on["valid"] == off["valid"] and on["test"] == off["test"]  # no random number drawn, nothing changed
    a, b = load_checkpoint(tmp_path / "on" / "best")[1], load_checkpoint(tmp_path / "off" / "best")[1]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_quick_banners_and_pa_mlm_step_records(tmp_path, capsys, monkeypatch):
    from clickprompt.pipeline import quick
    from clickprompt.plm.tiny import make_tiny_plm

    monkeypatch.setenv("CLICKPROMPT_PROGRESS", "lines")
    make_tiny_dataset(tmp_path / "processed" / "tiny-ml", n=600, seed=0)
    plm = make_tiny_plm(tmp_path / "plm", "bert")
    quick("tiny-ml", tmp_path / "runs", profile="tiny", processed_dir=tmp_path / "processed", plm=str(plm))
    out = capsys.readouterr().out
    assert "[quick 2/4] PA-MLM pretraining (Sec 3.5.1): the CTR model writes soft prompts" in out
    assert "[quick 4/4] finetuning with the PLM (Eq. 9)" in out
    assert re.search(r"\[pretrain\] on tiny-ml: 4 optimizer steps \(1 epoch of \d+ steps, capped at 4 by "
                     r"train.max_steps\) of 32 samples", out)
    assert "[pretrain] stopped at step 4 in epoch 1 (train.max_steps = 4)" in out
    assert re.search(r"\[quick 2/4\] done in \d+ s: valid PA-MLM loss \d+\.\d{4}", out)
    pre = [json.loads(l) for l in (tmp_path / "runs" / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in pre if r.get("kind") == "step"] == [4]  # PA-MLM writes step records too
    again = quick("tiny-ml", tmp_path / "runs", profile="tiny", processed_dir=tmp_path / "processed", plm=str(plm))
    assert again["rows"][0]["test_auc"] > 0
    assert "[quick 1/4] reused the finished run (same settings)" in capsys.readouterr().out


def test_progress_lines_can_be_chosen_and_bars_in_a_notebook(monkeypatch):
    from clickprompt.progress import progress_mode

    monkeypatch.setenv("CLICKPROMPT_PROGRESS", "off")
    assert progress_mode(True) == "off"
    monkeypatch.setenv("CLICKPROMPT_PROGRESS", "lines")
    assert progress_mode(True) == "lines" and progress_mode(False) == "off"


def test_notebook_progress_bars_render_as_widgets():
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    pytest.importorskip("ipywidgets")
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(
        "from clickprompt.progress import progress_mode\n"
        "from tqdm.auto import tqdm\n"
        "for _ in tqdm(range(3)):\n    pass\n"
        "print(progress_mode())"))
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    text = "".join(o.get("text", "") for o in outputs)
    assert "IProgress not found" not in text  # the warning every notebook printed
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert text.strip().splitlines()[-1] == "bar"  # training in a notebook draws a bar, not lines


def test_step_record_mean_matches_the_running_losses():
    """The step record's train_loss is the mean of the steps since the previous record."""
    from types import SimpleNamespace

    from clickprompt.progress import TrainLog

    written = []
    run = SimpleNamespace(stage="train-ctr", append_metrics=written.append, path=Path("."))
    log = TrainLog(run, SimpleNamespace(log_every=3, epochs=1, max_steps=None), main=True, progress=False,
                   tensorboard=False, steps_per_epoch=7, n_train=7, monitor=None, mode="max", early_stopping=False,
                   patience=1, checkpoint_config=None, world=1)
    losses = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    for i in range(1, 8):
        log.step(0, i, i, losses[:i], [0.1], 0.0)
    log.epoch_steps_done(0, 7, 7, losses, [0.1], 0.0)
    assert [(r["step"], r["train_loss"]) for r in written] == [(3, 2.0), (6, 5.0), (7, 7.0)]
    assert np.isclose(written[0]["lr"], 0.1)
