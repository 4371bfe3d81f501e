"""The stages as library functions: the CLI, the notebooks and the dashboard all call these.

    train_ctr(cfg, run_dir)          a CTR backbone from scratch (the baselines of Table 2)
    pretrain(cfg, run_dir)           PA-MLM (Sec 3.5.1)
    finetune(cfg, run_dir, ...)      with PLM (Eq. 9) or without (Eq. 10)
    evaluate_run(run_dir)            test metrics of a finished run

Each stage writes a self-describing run directory: config.json (the resolved RunConfig plus the
stage), metrics.jsonl (per epoch), best/ (config.json + model.safetensors), results.json and
predictions_test.parquet. A finished run (results.json present) is not recomputed unless asked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from clickprompt.checkpoint import atomic_write_text, check_fingerprint, load_checkpoint, load_state_into
from clickprompt.config import RunConfig
from clickprompt.ctr import create_ctr
from clickprompt.data.dataset import PreparedDataset, Split
from clickprompt.evaluation import ctr_metrics, mean_std
from clickprompt.errors import CheckpointError
from clickprompt.model import CTRClassifier
from clickprompt.training import autocast_dtype, is_main_process, predict, resolve_device, seed_everything, train


def load_dataset(cfg: RunConfig) -> PreparedDataset:
    return PreparedDataset(Path(cfg.data.processed_dir) / cfg.data.dataset)


def ctr_batcher(split: Split):
    ids = torch.from_numpy(split.ids)
    labels = torch.from_numpy(split.labels)

    def make_batch(idx: np.ndarray) -> dict:
        t = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        return {"ids": ids[t], "labels": labels[t]}

    return make_batch


def evaluator(make_batch, split: Split, cfg: RunConfig):
    def evaluate(model) -> dict:
        device = next(model.parameters()).device
        logits = predict(model, make_batch, len(split), cfg.train.eval_batch_size, device,
                         autocast_dtype(cfg.train.precision, device))
        m = ctr_metrics(split.labels, 1 / (1 + np.exp(-logits)))
        return {"auc": m["auc"], "logloss": m["logloss"]}

    return evaluate


def _write_run_config(run_dir: Path, cfg: RunConfig, stage: str, extra: dict | None = None) -> None:
    if is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.json", json.dumps({"stage": stage, **(extra or {}), **cfg.to_dict()}, indent=2))


def finish_run(run_dir: Path, model, make_batch, ds: PreparedDataset, cfg: RunConfig, result, extra: dict) -> dict:
    """Score valid and test with the best weights; write results.json and test predictions."""
    device = next(model.parameters()).device
    dtype = autocast_dtype(cfg.train.precision, device)
    out = {"stage": extra.get("stage"), "dataset": ds.name, "seed": cfg.train.seed}
    for name in ("valid", "test"):
        split = ds.split(name)
        mb = make_batch(split)
        logits = predict(model, mb, len(split), cfg.train.eval_batch_size, device, dtype)
        probs = 1 / (1 + np.exp(-logits))
        out[name] = ctr_metrics(split.labels, probs)
        if name == "test" and is_main_process():
            tmp = run_dir / ".predictions_test.parquet.tmp"
            pd.DataFrame({"label": split.labels, "prob": probs.astype(np.float32)}).to_parquet(tmp, index=False)
            tmp.replace(run_dir / "predictions_test.parquet")
    out.update(
        best_epoch=result.best_epoch, epochs_run=result.epochs_run, steps=result.steps,
        train_samples_per_s=round(result.samples_per_s, 1), stopped_early=result.stopped_early, **extra,
    )
    if is_main_process():
        atomic_write_text(run_dir / "results.json", json.dumps(out, indent=2))
    return out


def train_ctr(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, force: bool = False, progress: bool = True) -> dict:
    """Train cfg.ctr.model from scratch on cfg.data.dataset (App. B.1 protocol)."""
    run_dir = Path(run_dir)
    if (run_dir / "results.json").exists() and not (force or resume):
        return json.loads((run_dir / "results.json").read_text())
    ds = load_dataset(cfg)
    seed_everything(cfg.train.seed)
    model = CTRClassifier(create_ctr(cfg.ctr.model, ds.spec, cfg.ctr))
    _write_run_config(run_dir, cfg, "train-ctr")
    train_mb = ctr_batcher(ds.split("train"))
    result = train(
        model, train_mb, len(ds.split("train")), cfg.train, run_dir,
        evaluate=evaluator(ctr_batcher(ds.split("valid")), ds.split("valid"), cfg),
        checkpoint_config=model_config(model, ds, cfg, "ctr"), resume=resume, progress=progress,
    )
    return finish_run(run_dir, model, ctr_batcher, ds, cfg, result, {"stage": "train-ctr", "model": cfg.ctr.model})


def model_config(model, ds: PreparedDataset, cfg: RunConfig, kind: str) -> dict:
    return {
        "kind": kind,
        "dataset": ds.name,
        "data_fingerprint": ds.fingerprint,
        "spec": ds.spec.to_dict(),
        "run_config": cfg.to_dict(),
        "clickprompt_version": __import__("clickprompt").__version__,
    }


def load_ctr_classifier(checkpoint_dir: str | Path, ds: PreparedDataset | None = None) -> CTRClassifier:
    """Rebuild a CTR model (from scratch or ClickPrompt w/o PLM) from its checkpoint directory."""
    from clickprompt.data.schema import FeatureSpec

    config, state = load_checkpoint(checkpoint_dir)
    if config.get("kind") not in ("ctr",):
        raise CheckpointError(f"{checkpoint_dir}: holds a {config.get('kind')!r} checkpoint, not a CTR model")
    spec = FeatureSpec.from_dict(config["spec"])
    if ds is not None:
        check_fingerprint(config, ds.fingerprint, checkpoint_dir)
    run_cfg = RunConfig.from_dict({k: v for k, v in config["run_config"].items()})
    model = CTRClassifier(create_ctr(run_cfg.ctr.model, spec, run_cfg.ctr))
    load_state_into(model, state, checkpoint_dir)
    return model


def summarize_seeds(run_dirs: list[Path], out: Path | None = None) -> dict:
    rows = [json.loads((d / "results.json").read_text()) for d in run_dirs]
    aucs = [r["test"]["auc"] for r in rows]
    lls = [r["test"]["logloss"] for r in rows]
    summary = {
        "runs": [str(d) for d in run_dirs],
        "seeds": [r["seed"] for r in rows],
        "test_auc": aucs,
        "test_logloss": lls,
        "test_auc_mean_std": mean_std(aucs),
        "test_logloss_mean_std": mean_std(lls),
        "epochs": [r["epochs_run"] for r in rows],
        "train_samples_per_s": [r["train_samples_per_s"] for r in rows],
    }
    if out is not None and is_main_process():
        atomic_write_text(out, json.dumps(summary, indent=2))
    return summary
