"""Run directories that cannot lie (clickprompt.rundir), tried the way a user meets them: the command line.

Each test pins one way a run directory used to give a wrong number with exit code 0, lose data or
print a traceback: reuse under another label, two writers, untrained models, damaged files, settings
lost on the way from flag to config, unknown PLMs and devices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from clickprompt.checkpoint import load_checkpoint
from clickprompt.cli import main as cli
from clickprompt.config import FLAG_KEYS, load_stage_config
from clickprompt.data.synthetic import make_tiny_dataset
from clickprompt.errors import CheckpointError
from clickprompt.plm.tiny import make_tiny_plm
from clickprompt.rundir import ModelKind, RunDir, RunLock, Stage

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("rundir")
    make_tiny_dataset(root / "data" / "tiny-ml", n=1200, seed=0)
    plm = make_tiny_plm(root / "bert", "bert")
    return {"root": root, "data": root / "data", "plm": plm}


def _ctr_args(env, out, *extra):
    return ["train-ctr", "--profile", "tiny", "--dataset", "tiny-ml", "--processed-dir", str(env["data"]),
            "--out", str(out), "--quiet", *extra]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if not line.startswith("note:")]
    assert len(errors) == 1 and errors[0].startswith("error: "), err
    assert "Traceback" not in "\n".join(err)
    return errors[0]


@pytest.fixture(scope="module")
def finished(env):
    """A finished DCNv2 run (tiny profile, seed 0)."""
    out = env["root"] / "runs" / "dcnv2"
    assert cli(_ctr_args(env, out)) == 0
    return out


# ---------------------------------------------------------------- reuse only for the same settings


def test_finished_run_is_not_reported_under_new_settings(env, finished, capsys):
    before = json.loads((finished / "results.json").read_text())
    capsys.readouterr()
    rc = cli(_ctr_args(env, finished, "--model", "fm", "--set", "train.seed=99"))
    assert rc == 2
    line = _one_error_line(capsys)
    assert "finished with other settings" in line and "ctr.model: 'dcnv2' -> 'fm'" in line
    assert "train.seed: 0 -> 99" in line and "--force" in line
    assert json.loads((finished / "results.json").read_text()) == before  # untouched
    # the same settings read the run back; --force recomputes it under the new ones
    assert cli(_ctr_args(env, finished)) == 0
    assert "dcnv2 seed 0: test AUC" in capsys.readouterr().out


def test_force_recomputes_with_the_new_settings(env, finished, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(_ctr_args(env, out)) == 0
    assert cli(_ctr_args(env, out, "--model", "fm", "--force")) == 0
    assert "fm seed 0" in capsys.readouterr().out
    assert RunDir(out).read_config()["ctr"]["model"] == "fm" and RunDir(out).verify().ok


# ---------------------------------------------------------------- one writer at a time


def test_second_writer_is_refused_with_the_holders_pid(env, tmp_path, capsys):
    out = tmp_path / "run"
    with RunLock(out / ".lock", str(out)):
        assert cli(_ctr_args(env, out)) == 2
        line = _one_error_line(capsys)
        assert f"PID {os.getpid()}" in line and "is writing it" in line
    assert not RunDir(out).finished and not (out / "config.json").exists()  # the second writer wrote nothing
    assert cli(_ctr_args(env, out)) == 0  # released: the next writer proceeds


def test_a_dead_writers_lock_is_taken_over_and_said(env, tmp_path, capsys):
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        from clickprompt.rundir import RunLock
        RunLock(__import__("pathlib").Path({str(out / '.lock')!r}), "x").acquire()
        print(os.getpid(), flush=True)
        os._exit(0)  # dies holding the lock: no release
    """)
    pid = int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert cli(_ctr_args(env, out)) == 0
    assert f"took over the lock left by process {pid}" in capsys.readouterr().err
    assert RunDir(out).verify().ok


# ---------------------------------------------------------------- nothing untrained, nothing before validation


@pytest.mark.parametrize("flags, key", [
    (["--epochs", "0"], "train.epochs = 0"),
    (["--set", "train.batch_size=-4"], "train.batch_size = -4"),
    (["--set", "train.lr=nan"], "train.lr = nan"),
    (["--device", "tpu"], "train.device = 'tpu'"),
    (["--set", "train.max_steps=0"], "train.max_steps = 0"),
])
def test_invalid_numbers_and_devices_are_refused_before_anything_is_written(env, tmp_path, capsys, flags, key):
    out = tmp_path / "run"
    assert cli(_ctr_args(env, out, *flags)) == 2
    assert _one_error_line(capsys).startswith(f"error: {key}")
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_cuda_without_cuda_is_refused(env, tmp_path, capsys):
    assert cli(_ctr_args(env, tmp_path / "run", "--device", "cuda")) == 2
    assert "CUDA is not available" in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_unknown_plm_is_one_line_and_leaves_no_run_directory(env, tmp_path, capsys):
    out = tmp_path / "pre"
    rc = cli(["pretrain", "--profile", "tiny", "--dataset", "tiny-ml", "--processed-dir", str(env["data"]),
              "--plm", "no-such-plm", "--out", str(out), "--quiet"])
    assert rc == 2
    assert "no-such-plm" in _one_error_line(capsys)
    assert not out.exists()


# ---------------------------------------------------------------- damaged files are refused by name


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "zero-4k":
        mid = len(data) // 2
        data[mid : mid + 4096] = bytes(min(4096, len(data) - mid))
    elif how == "truncate":
        data = data[: len(data) // 2]
    elif how == "empty":
        data = bytearray()
    elif how == "garbage":
        data = bytearray(os.urandom(len(data)))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["zero-4k", "truncate", "empty", "garbage"])
def test_damaged_weights_are_refused_naming_the_file(env, tmp_path, capsys, how):
    out = tmp_path / "run"
    assert cli(_ctr_args(env, out)) == 0
    weights = out / "best" / "model.safetensors"
    _damage(weights, how)
    with pytest.raises(CheckpointError, match=str(weights).replace(".", r"\.")):
        load_checkpoint(out / "best")
    capsys.readouterr()
    assert cli(["evaluate", str(out)]) == 2
    assert str(weights) in _one_error_line(capsys)
    verdict = RunDir(out).verify()
    assert verdict.status == "damaged" and str(weights) in verdict.reason
    # and the run is not silently reused either
    assert cli(_ctr_args(env, out)) == 2
    assert "damaged" in _one_error_line(capsys)


def test_broken_checkpoint_config_is_refused(env, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(_ctr_args(env, out)) == 0
    (out / "best" / "config.json").write_text("{broken")
    assert cli(["evaluate", str(out)]) == 2
    assert str(out / "best" / "config.json") in _one_error_line(capsys)


def test_truncated_trainer_state_under_resume_is_one_line(env, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(_ctr_args(env, out)) == 0
    (out / "results.json").unlink()  # as if killed after the last save
    _damage(out / "state" / "trainer.safetensors", "truncate")
    assert cli(_ctr_args(env, out, "--resume")) == 2
    assert str(out / "state" / "trainer.safetensors") in _one_error_line(capsys)


def test_truncated_pretrained_checkpoint_is_one_line(env, tmp_path, capsys):
    pre = tmp_path / "pre"
    base = ["--profile", "tiny", "--dataset", "tiny-ml", "--processed-dir", str(env["data"]), "--quiet"]
    assert cli(["pretrain", *base, "--plm", str(env["plm"]), "--out", str(pre)]) == 0
    _damage(pre / "best" / "model.safetensors", "truncate")
    capsys.readouterr()
    out = tmp_path / "ft"
    assert cli(["finetune", *base, "--pretrained", str(pre), "--without-plm", "--out", str(out)]) == 2
    assert str(pre / "best" / "model.safetensors") in _one_error_line(capsys)
    assert not out.exists()


# ---------------------------------------------------------------- one route from flag to setting


def test_yaml_values_equal_to_defaults_are_not_lost(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("train:\n  plm_lr: 5.0e-5\n  epochs: 10\n")  # both equal TrainConfig's defaults
    cfg = load_stage_config("tiny", "finetune-with-plm", yaml_file)
    assert cfg.train.plm_lr == 5e-5 and cfg.train.epochs == 10  # the tiny profile says 0.001 and 1
    cfg = load_stage_config("tiny", "finetune-with-plm", yaml_file, ["train.epochs=3"], flags={"train.epochs": 4})
    assert cfg.train.epochs == 4  # profile < YAML < --set < flags


def test_every_run_flag_is_in_the_one_map():
    from clickprompt.cli import build_parser

    parser = build_parser()
    not_settings = {"help", "profile", "config", "set", "seeds", "out", "resume", "force", "quiet", "pretrained",
                    "init_ctr", "without_plm", "max_train_samples", "cmd", "func"}
    sub = next(a for a in parser._actions if a.dest == "cmd")
    for name in ("train-ctr", "pretrain", "finetune"):
        for action in sub.choices[name]._actions:
            if action.dest not in not_settings:
                assert action.dest in FLAG_KEYS, f"{name} --{action.dest} bypasses config.FLAG_KEYS"


def test_a_flag_contradicting_the_pretraining_architecture_is_refused(env, tmp_path, capsys):
    pre = tmp_path / "pre"
    base = ["--profile", "tiny", "--dataset", "tiny-ml", "--processed-dir", str(env["data"]), "--quiet"]
    assert cli(["pretrain", *base, "--plm", str(env["plm"]), "--out", str(pre)]) == 0  # tiny profile: K = 2
    capsys.readouterr()
    out = tmp_path / "ft"
    assert cli(["finetune", *base, "--pretrained", str(pre), "--num-prompts", "7", "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert "prompt.num_prompts = 7 conflicts with the pretraining run" in line and "prompt.num_prompts = 2" in line
    assert not out.exists()
    # the matching value, or none at all, is fine: the architecture is the pretraining run's
    assert cli(["finetune", *base, "--pretrained", str(pre), "--num-prompts", "2", "--max-steps", "2",
                "--out", str(out)]) == 0
    assert RunDir(out).read_config()["prompt"]["num_prompts"] == 2


# ---------------------------------------------------------------- verify, kinds, CUDA random state


def test_runs_verify_prints_one_line_per_run(env, finished, tmp_path, capsys):
    capsys.readouterr()
    assert cli(["runs", "verify", str(finished)]) == 0
    assert capsys.readouterr().out.strip() == f"ok         {finished}"
    bad = tmp_path / "bad"
    assert cli(_ctr_args(env, bad)) == 0
    _damage(bad / "predictions_test.parquet", "zero-4k")
    stale = tmp_path / "stale"
    assert cli(_ctr_args(env, stale)) == 0
    cfg = json.loads((stale / "config.json").read_text())
    (stale / "manifest.json").unlink()
    capsys.readouterr()
    assert cli(["runs", "verify", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"damaged    {bad}: {bad / 'predictions_test.parquet'}: ")
    assert lines[1].startswith(f"stale      {stale}: no manifest.json")
    assert cfg["stage"] == Stage.TRAIN_CTR and RunDir(stale).kind() is ModelKind.CTR


def test_resume_restores_cuda_random_states(monkeypatch):
    from clickprompt import training

    saved = {"rng.torch": torch.get_rng_state(), "rng.cuda.0": torch.tensor([1], dtype=torch.uint8),
             "rng.cuda.1": torch.tensor([2], dtype=torch.uint8)}
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.extend(states))
    training._restore_rng_states(saved)
    assert [int(s[0]) for s in restored] == [1, 2]
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.tensor([7], dtype=torch.uint8)])
    assert int(training._rng_states()["rng.cuda.0"][0]) == 7


def test_a_pretraining_run_named_by_another_path_is_the_same_run():
    """Reuse compares the pretraining run by its weights: runs/pre and /abs/runs/pre with one SHA-256 are one
    request; another SHA-256 under the same path is not."""
    from clickprompt.config import RunConfig
    from clickprompt.rundir import settings_diff

    base = {**RunConfig().to_dict(), "stage": "finetune-without-plm", "data_fingerprint": "f" * 16,
            "pretrained": "runs/pre", "pretrained_weights": "a" * 64}
    assert settings_diff(base, {**base, "pretrained": "/work/runs/pre"}) == []
    assert settings_diff(base, {**base, "pretrained_weights": "b" * 64}) == [f"pretrained_weights: {'a' * 64!r} -> {'b' * 64!r}"]
    with_init = {**base, "stage": "finetune-with-plm", "init_ctr": "runs/wo", "init_ctr_weights": "c" * 64}
    assert settings_diff(with_init, {**with_init, "init_ctr": "./runs/wo"}) == []
    assert settings_diff(base | {"stage": "finetune-with-plm"}, with_init) != []  # init_ctr given vs not
