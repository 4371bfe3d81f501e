"""Run directories: the unit people compare and cite, owned by one type so that it cannot lie.

    run = RunDir("runs/ml-100k/dcnv2")
    with run.open(Stage.TRAIN_CTR, settings, force=False, resume=False) as session:
        if session.reused is not None:
            return session.reused              # finished with exactly these settings: read back
        ...train into run.best / run.state / run.metrics_path...
        return session.finish(results)          # results.json + the run's manifest

Layout
    config.json               the resolved settings: {"stage", "pretrained", "pretrained_weights",
                              "data", "ctr", "plm", "prompt", "train"} (+ facts such as the PLM's new heads)
    .lock                     held (fcntl.flock) by the one process writing the run; it holds that PID
    metrics.jsonl             one JSON line per epoch (training.train)
    state/trainer.safetensors resumable trainer state, its payload SHA-256 in its own header
    best/                     the best checkpoint: config.json + model.safetensors + manifest.json
    tokenizer/                the tokenizer of the text stages
    predictions_test.parquet  the test split's labels and click probabilities
    results.json              final metrics; its presence means "finished"
    manifest.json             written last: SHA-256 of config.json, results.json, the predictions and
                              the tokenizer files, the settings hash, data fingerprint, versions

Rules
- Nothing is created before the settings are validated (the stage functions validate, then open).
- One writer at a time: a second writer gets one line naming the holder's PID; a lock left by a dead
  process (flock is released by the kernel when a process dies) is taken over and said so.
- A finished run is reused only if its resolved settings equal the request (`identity`: everything
  that changes what is computed, seed included; not the device, logging cadence or data folder);
  otherwise one line lists the differing keys and points at --force. An unfinished run restarts, or
  continues from its state with --resume (same settings required).
- Every checkpoint load verifies the manifest (clickprompt.checkpoint); `verify()` checks a whole run
  (`clickprompt runs verify`): ok / damaged / stale / unfinished / running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path

from clickprompt.checkpoint import (
    MANIFEST, WEIGHTS, atomic_write_json, atomic_write_text, json_sha256, read_manifest, sibling_tmp, verify_files,
)
from clickprompt.errors import CheckpointError, ClickPromptError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: runs are not locked there
    fcntl = None


class Stage(StrEnum):
    """What a run computed (config.json "stage", results.json "stage", the CLI sub-commands)."""

    TRAIN_CTR = "train-ctr"  # a CTR model from scratch (App. B.1)
    PRETRAIN = "pretrain"  # PA-MLM (Sec 3.5.1), PA-CLM for decoder-only PLMs
    FINETUNE_WITH_PLM = "finetune-with-plm"  # Eq. 9
    FINETUNE_WITHOUT_PLM = "finetune-without-plm"  # Eq. 10

    @property
    def text(self) -> bool:
        """Whether the stage reads the text view (and so has a PLM and prompts)."""
        return self in (Stage.PRETRAIN, Stage.FINETUNE_WITH_PLM)


class ModelKind(StrEnum):
    """What a checkpoint's weights are (best/config.json "kind")."""

    CTR = "ctr"  # a bare CTR model: from scratch, or ClickPrompt w/o PLM (Eq. 10)
    PRETRAIN = "clickprompt-pretrain"  # CTR model + prompt generator + PLM with its token head
    CLICKPROMPT_CTR = "clickprompt-ctr"  # ClickPrompt with PLM (Eq. 9)

    @property
    def scores_clicks(self) -> bool:
        return self is not ModelKind.PRETRAIN

    @property
    def has_prompts(self) -> bool:
        return self is not ModelKind.CTR


class RunError(ClickPromptError):
    """A run directory cannot be used as asked (locked, finished with other settings, damaged)."""


# ---------------------------------------------------------------- settings identity

SECTIONS = ("data", "ctr", "plm", "prompt", "train")
# settings that never change what a run computes: left out of its identity
NOT_IDENTITY = {"data": {"processed_dir"},
                "train": {"device", "num_workers", "log_every", "save_every", "eval_batch_size"}}


def identity(stage: str, settings: dict) -> dict:
    """The settings that decide what a run of `stage` computes, seed included. Sections a stage does not
    use are left out (no PLM or prompt settings for a CTR model alone, no finetuning switches for PA-MLM),
    so identical computations compare equal whatever the unused settings say. Keys a stored config lacks
    (written by an older version) take today's defaults."""
    from clickprompt.config import RunConfig

    defaults = RunConfig().to_dict()
    d = {s: {**defaults[s], **dict(settings.get(s) or {})} for s in SECTIONS}
    for section, keys in NOT_IDENTITY.items():
        for k in keys:
            d[section].pop(k, None)
    if stage in (Stage.TRAIN_CTR, Stage.FINETUNE_WITHOUT_PLM):
        d.pop("plm"), d.pop("prompt")
        d["train"].pop("plm_lr")
    if stage == Stage.PRETRAIN:  # the finetuning-only switches
        d["prompt"].pop("use_prompts")
        d["plm"].pop("pooling")
    if stage != Stage.PRETRAIN:
        d["train"].pop("pretrain_patience", None)
    if stage in (Stage.TRAIN_CTR, Stage.PRETRAIN) or not settings.get("pretrained"):
        d["train"].pop("transfer", None)  # only a finetuning from a PA-MLM run transfers anything
    return d


# what a run depends on besides its RunConfig: the data's fingerprint, the pretraining run (path and weights)
# and stage arguments; a stored config.json written before one of these existed does not contradict it
RUN_KEYS = ("data_fingerprint", "pretrained", "pretrained_weights", "max_train_samples")


def request_key(settings: dict) -> dict:
    """Everything a reuse decision compares: stage, the pretraining run and its weights, and identity."""
    stage = settings.get("stage")
    key = {"stage": stage, **{k: settings.get(k) for k in RUN_KEYS}, **identity(stage, settings)}
    return json.loads(json.dumps(key, default=str))  # as config.json holds it (tuples become lists)


def settings_sha256(settings: dict) -> str:
    return json_sha256(request_key(settings))


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k in SECTIONS:
            out.update(_flat(v, f"{k}."))
        else:
            out[prefix + k] = v
    return out


def settings_diff(stored: dict, requested: dict) -> list[str]:
    """'key: old -> new' for every compared setting that differs (stored run vs request)."""
    a, b = _flat(request_key(stored)), _flat(request_key(requested))
    for k in RUN_KEYS:
        if k not in stored:  # written by an older version
            a.pop(k, None), b.pop(k, None)
    absent = "(absent)"
    return [f"{k}: {a.get(k, absent)!r} -> {b.get(k, absent)!r}" for k in sorted(set(a) | set(b)) if a.get(k, absent) != b.get(k, absent)]


# ---------------------------------------------------------------- the writer's lock


class RunLock:
    """An exclusive, non-blocking fcntl lock on `path` that records its holder (PID, host, start time).
    The kernel drops it when the holder dies; the next taker finds the dead holder's record and says so.
    The file is never deleted (deleting a lock file races with a process about to lock it)."""

    def __init__(self, path: Path, label: str):
        self.path, self.label, self.fd = Path(path), label, None

    @staticmethod
    def _holder(fd: int) -> dict:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 4096)
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            return {}

    def acquire(self) -> "RunLock":
        if fcntl is None:  # pragma: no cover
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            since = f", since {holder['started']}" if holder.get("started") else ""
            raise RunError(f"{self.label}: another process (PID {holder.get('pid', '?')} on "
                           f"{holder.get('host', '?')}{since}) is writing it; wait for it, or choose another --out") from None
        previous = self._holder(fd)
        if previous.get("pid") is not None:
            print(f"note: {self.label}: took over the lock left by process {previous['pid']} on "
                  f"{previous.get('host', '?')}, which is no longer running", file=sys.stderr)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode())
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)  # a clean exit leaves no holder behind
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def holder_if_held(self) -> dict | None:
        """The holder's record if a live process holds the lock now, else None (does not take it)."""
        if fcntl is None or not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self._holder(fd) or {"pid": "?"}
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# ---------------------------------------------------------------- the run directory


@dataclass
class Verdict:
    path: Path
    status: str  # ok | damaged | stale | unfinished | running | not-a-run
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def line(self) -> str:
        return f"{self.status:<10s} {self.path}" + (f": {self.reason}" if self.reason else "")


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _is_main_process() -> bool:
    from clickprompt.training import is_main_process

    return is_main_process()


class RunDir:
    CONFIG = "config.json"
    RESULTS = "results.json"
    METRICS = "metrics.jsonl"
    PREDICTIONS = "predictions_test.parquet"  # a scoring run's test labels and click probabilities
    LOCK = ".lock"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # -- layout
    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def results_path(self) -> Path:
        return self.path / self.RESULTS

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def predictions_path(self) -> Path:
        return self.path / self.PREDICTIONS

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def best(self) -> Path:
        return self.path / "best"

    @property
    def state(self) -> Path:
        return self.path / "state"

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / "tokenizer"

    @property
    def lock(self) -> RunLock:
        return RunLock(self.path / self.LOCK, str(self.path))

    @property
    def finished(self) -> bool:
        return self.results_path.exists()

    @property
    def has_state(self) -> bool:
        return (self.state / "trainer.safetensors").exists()

    # -- reading
    def _read_json(self, path: Path) -> dict:
        if not path.exists():
            raise RunError(f"{path}: missing (not a finished run directory)")
        try:
            data = json.loads(path.read_text())
        except ValueError:
            raise RunError(f"{path}: not valid JSON (file damaged)") from None
        if not isinstance(data, dict):
            raise RunError(f"{path}: expected a JSON object (file damaged)")
        return data

    def read_config(self) -> dict:
        return self._read_json(self.config_path)

    def read_results(self) -> dict:
        self._verify_listed(self.RESULTS)
        return self._read_json(self.results_path)

    def _verify_listed(self, name: str) -> None:
        """Check one file against the run manifest, where the run has one that lists it (finished runs)."""
        if self.manifest_path.exists():
            manifest = read_manifest(self.path)
            if name in manifest["files"]:
                verify_files(self.path, {**manifest, "files": {name: manifest["files"][name]}})

    @property
    def stage(self) -> Stage | None:
        for path in (self.results_path, self.config_path):
            if path.exists():
                with contextlib.suppress(RunError, ValueError):
                    return Stage(self._read_json(path).get("stage"))
        return None

    def kind(self) -> ModelKind | None:
        """The best checkpoint's kind, or None where there is none (or it is unreadable)."""
        try:
            return ModelKind(json.loads((self.best / "config.json").read_text()).get("kind"))
        except (OSError, ValueError):
            return None

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def read_predictions(self):
        """(labels, probs) as float64 arrays from the saved test predictions; None if the run has none."""
        import pandas as pd

        if not self.predictions_path.exists():
            return None
        self._verify_listed(self.PREDICTIONS)
        frame = pd.read_parquet(self.predictions_path)
        return frame["label"].to_numpy(dtype="float64"), frame["prob"].to_numpy(dtype="float64")

    # -- writing (the main process only: stages call these through a Session)
    def write_config(self, settings: dict) -> None:
        atomic_write_json(self.config_path, settings)

    def write_predictions(self, labels, probs) -> None:
        import pandas as pd

        tmp = sibling_tmp(self.predictions_path)
        pd.DataFrame({"label": labels, "prob": probs.astype("float32")}).to_parquet(tmp, index=False)
        os.replace(tmp, self.predictions_path)

    def append_metrics(self, record: dict) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def rewrite_metrics(self, records: list[dict]) -> None:
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in records))

    def _clear_outputs(self) -> None:
        """Remove what a previous attempt computed (config.json and the lock stay)."""
        for name in (self.RESULTS, MANIFEST, self.PREDICTIONS, self.METRICS):
            (self.path / name).unlink(missing_ok=True)
        for d in (self.best, self.state, self.tokenizer_dir):
            if d.exists():
                shutil.rmtree(d)

    # -- the one way to write a run
    @contextlib.contextmanager
    def open(self, stage: Stage | str, settings: dict, *, force: bool = False, resume: bool = False):
        """Lock the run, apply the reuse rule, write config.json; yields a Session. Call it only with
        validated settings: this is where the directory is first created."""
        stage = Stage(stage)
        settings = {**settings, "stage": str(stage)}
        main = _is_main_process()
        lock = self.lock if main else None
        if lock is not None:
            lock.acquire()
        try:
            session = Session(self, stage, settings, main=main)
            self._decide(session, force=force, resume=resume)
            if main and session.reused is None and not session.resume:  # a resumed run keeps its config.json
                self.write_config(settings)
            yield session
            _barrier()  # every rank leaves once rank 0 has written the run (a next stage reads it)
        finally:
            if lock is not None:
                lock.release()

    def _decide(self, session: "Session", *, force: bool, resume: bool) -> None:
        requested = session.settings
        if self.finished and not force:
            stored = self.read_config()
            diff = settings_diff(stored, requested)
            if diff:
                raise RunError(f"{self.path}: finished with other settings ({'; '.join(diff)}); pass --force to "
                               "recompute it, or choose another --out")
            verdict = self.verify(check_lock=False)  # this process holds the lock
            if verdict.status == "damaged":
                raise RunError(f"{self.path}: finished, but damaged: {verdict.reason}; pass --force to recompute it")
            session.reused = self.read_results()
            return
        if resume and not force and self.has_state and self.config_path.exists():
            diff = settings_diff(self.read_config(), requested)
            if diff:
                raise RunError(f"{self.path}: cannot resume with other settings ({'; '.join(diff)}); run without "
                               "--resume to start over")
            session.resume = True
            return
        if resume and session.main:
            print(f"note: {self.path}: no saved state to resume from; starting from the beginning", file=sys.stderr)
        if session.main and self.path.exists():
            self._clear_outputs()

    # -- checking
    def verify(self, *, check_lock: bool = True) -> Verdict:
        """ok / damaged / stale / unfinished / running / not-a-run, with a one-line reason."""
        v = lambda status, reason="": Verdict(self.path, status, reason)  # noqa: E731
        if not self.path.is_dir() or not (self.config_path.exists() or self.results_path.exists()):
            return v("not-a-run", "no config.json or results.json here")
        holder = self.lock.holder_if_held() if check_lock else None
        if holder is not None:
            return v("running", f"being written by process {holder.get('pid', '?')} on {holder.get('host', '?')}")
        try:
            config = self.read_config()
        except RunError as e:
            return v("damaged", str(e))
        if not self.finished:
            return v("unfinished", "has a saved state (--resume continues it)" if self.has_state else "no results yet")
        try:
            run_manifest = read_manifest(self.path)
        except CheckpointError:
            return v("stale", "no manifest.json (written by an older version); recompute with --force to verify it")
        try:
            verify_files(self.path, run_manifest)
            best_manifest = verify_files(self.best) if self.best.is_dir() else None
        except CheckpointError as e:
            return v("damaged", str(e))
        digest = settings_sha256(config)
        if run_manifest.get("config_sha256") != digest:
            return v("stale", "config.json no longer matches the settings the run was computed with")
        if best_manifest is not None and best_manifest.get("config_sha256") not in (None, digest):
            return v("stale", "best/ was trained with other settings than config.json")
        pre, pre_weights = config.get("pretrained"), config.get("pretrained_weights")
        if pre and pre_weights:
            try:
                now = read_manifest(Path(pre) / "best")["files"][WEIGHTS]["sha256"]
            except (CheckpointError, KeyError):
                now = None
            if now != pre_weights:
                return v("stale", f"the pretraining run it started from ({pre}) has been recomputed or removed since")
        return v("ok")

    # -- loading
    def load_model(self, dataset=None):
        """(model, checkpoint config, tokenizer or None) from best/, verified against its manifest; with a
        PreparedDataset, refused unless it is the data the run was trained on."""
        from clickprompt.model import load_pretrained

        return load_pretrained(self.checkpoint(), dataset)

    def checkpoint(self) -> Path:
        """The run's best/ checkpoint directory (or this path, when it is itself a checkpoint)."""
        return self.best if self.best.is_dir() else self.path

    def dataset(self, processed_dir: str | Path | None = None):
        """The prepared dataset the run was trained on: `processed_dir` (default: the run's
        data.processed_dir) / its dataset, refused unless its fingerprint is the checkpoint's."""
        from clickprompt.checkpoint import check_fingerprint, read_checkpoint_config
        from clickprompt.data.dataset import PreparedDataset

        config = read_checkpoint_config(self.checkpoint())
        root = Path(processed_dir or config["run_config"]["data"]["processed_dir"])
        ds = PreparedDataset(root / config["dataset"])
        check_fingerprint(config, ds.fingerprint, self.checkpoint())
        return ds


@dataclass
class Session:
    """A run being written (RunDir.open). `reused`: the results of the identical finished run, or None.
    `resume`: continue from the saved trainer state."""

    run: RunDir
    stage: Stage
    settings: dict
    main: bool = True
    reused: dict | None = None
    resume: bool = False

    def finish(self, results: dict) -> dict:
        """results.json, then the run manifest (hashes of what the run wrote); the run is finished."""
        if self.main:
            run = self.run
            atomic_write_json(run.results_path, {**results, "stage": str(self.stage)})
            files = [RunDir.CONFIG, RunDir.RESULTS]
            if run.predictions_path.exists():
                files.append(RunDir.PREDICTIONS)
            if run.tokenizer_dir.is_dir():
                files += sorted(p.relative_to(run.path).as_posix() for p in run.tokenizer_dir.rglob("*") if p.is_file())
            from clickprompt.checkpoint import write_manifest

            write_manifest(run.path, files, stage=str(self.stage), config_sha256=settings_sha256(self.settings),
                           dataset=(self.settings.get("data") or {}).get("dataset"),
                           data_fingerprint=self.settings.get("data_fingerprint"))
        return {**results, "stage": str(self.stage)}
