"""The stages as library functions: the CLI, the notebooks and the dashboard all call these.

    train_ctr(cfg, run_dir)          a CTR backbone from scratch (the baselines of Table 2)
    pretrain(cfg, run_dir)           PA-MLM (Sec 3.5.1); PA-CLM for decoder-only PLMs (App. C.3)
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
import torch

from clickprompt.checkpoint import (
    atomic_write_text, check_fingerprint, checkpoint_dir, load_checkpoint, load_state_into, read_test_predictions,
    write_test_predictions,
)
from clickprompt.config import RunConfig
from clickprompt.ctr import create_ctr
from clickprompt.data.dataset import PreparedDataset, Split
from clickprompt.evaluation import ctr_metrics, mean_std
from clickprompt.errors import CheckpointError
from clickprompt.model import CTRClassifier
from clickprompt.training import (
    autocast, autocast_dtype, is_main_process, predict, read_trainer_meta, seed_everything, train,
)


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
    best = next((h for h in result.history if h["epoch"] == result.best_epoch and "valid_auc" in h), None)
    names = ("test",) if best is not None else ("valid", "test")
    if best is not None:  # the best epoch's validation scores were computed with these very weights
        valid = ds.split("valid")
        out["valid"] = {"auc": best["valid_auc"], "logloss": best["valid_logloss"], "n": len(valid),
                        "positive_rate": float(valid.labels.mean())}
    for name in names:
        split = ds.split(name)
        mb = make_batch(split)
        logits = predict(model, mb, len(split), cfg.train.eval_batch_size, device, dtype)
        probs = 1 / (1 + np.exp(-logits))
        out[name] = ctr_metrics(split.labels, probs)
        if name == "test" and is_main_process():
            write_test_predictions(run_dir, split.labels, probs)
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
    saved = read_trainer_meta(run_dir / "state") if resume else None
    if saved is not None:  # refuse other data before the run's config.json is rewritten
        check_fingerprint(saved, ds.fingerprint, run_dir)
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
    return model.eval()


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


# ---------------------------------------------------------------- ClickPrompt stages


def text_batcher(split: Split, cache, *, mlm: dict | None = None, clm: bool = False):
    """Batches with ids, labels and the token-cache text view; with `mlm` (mask_token_id, vocab_size,
    special_ids, prob, seed) also PA-MLM inputs: masked input_ids and mlm_labels; with `clm` PA-CLM
    inputs: clm_labels = the text's ids, -100 at padding (App. C.3, decoder-only PLMs).

    Masking is dynamic and a pure function of (seed, epoch, sample index) (masking.hashed_uniforms):
    the training loop calls `make_batch.set_epoch(epoch)` at every epoch start, like PyTorch's
    DistributedSampler, so one process and N data-parallel processes mask every sample alike and a
    resumed run masks as the uninterrupted one did."""
    from clickprompt.masking import hashed_uniforms, mask_tokens

    ids = torch.from_numpy(split.ids)
    labels = torch.from_numpy(split.labels)
    state = {"epoch": 0}

    def make_batch(idx: np.ndarray) -> dict:
        idx = np.asarray(idx, dtype=np.int64)
        tok = cache.assemble(split.text_index[idx], with_fields=mlm is not None)
        t = torch.from_numpy(idx)
        batch = {
            "ids": ids[t],
            "labels": labels[t],
            "input_ids": torch.from_numpy(tok["input_ids"]),
            "attention_mask": torch.from_numpy(tok["attention_mask"]),
        }
        if mlm is not None:
            special = torch.from_numpy((tok["token_field"] < 0) & (tok["attention_mask"] == 1))
            batch["input_ids"], batch["mlm_labels"] = mask_tokens(
                batch["input_ids"], batch["attention_mask"], special, mlm["mask_token_id"], mlm["vocab_size"],
                prob=mlm.get("prob", 0.15), special_ids=mlm["special_ids"],
                uniforms=hashed_uniforms(mlm.get("seed", 0), state["epoch"], idx, batch["input_ids"].shape[1]),
            )
            batch.pop("labels")
        elif clm:
            batch["clm_labels"] = batch["input_ids"].masked_fill(batch["attention_mask"].eq(0), -100)
            batch.pop("labels")
        return batch

    make_batch.set_epoch = lambda epoch: state.update(epoch=int(epoch))
    make_batch.lengths = cache.sample_lengths(split.text_index)  # train.group_by_length; predict sorts by it
    return make_batch


def build_clickprompt(cfg: RunConfig, spec, *, plm_weights: bool = True, hf_config: dict | None = None):
    """(core, tokenizer, plm_info): a fresh CTR model, prompt generator and the named PLM."""
    from clickprompt.model import ClickPromptModel
    from clickprompt.plm import load_plm, wrap_plm
    from clickprompt.plm.backbone import build_plm_from_config

    if plm_weights:
        mlm_model, tokenizer, info = load_plm(cfg.plm.name)
    else:
        from transformers import AutoConfig, AutoTokenizer

        from clickprompt.plm import resolve_plm

        tokenizer = AutoTokenizer.from_pretrained(resolve_plm(cfg.plm.name), local_files_only=True)
        config = AutoConfig.for_model(**hf_config)
        mlm_model, tokenizer, info = build_plm_from_config(config, tokenizer)
    ctr = create_ctr(cfg.ctr.model, spec, cfg.ctr)
    return ClickPromptModel(ctr, wrap_plm(mlm_model), cfg.prompt), tokenizer, info


def mlm_settings(tokenizer, seed: int = 0) -> dict:
    if tokenizer.mask_token_id is None:
        raise ValueError("PA-MLM needs a tokenizer with a mask token (decoder-only PLMs use PA-CLM instead)")
    return {
        "mask_token_id": tokenizer.mask_token_id,
        "vocab_size": len(tokenizer),
        "special_ids": list(tokenizer.all_special_ids),
        "seed": seed,
    }


def plm_param_groups(model, plm, lr: float, plm_lr: float) -> list[dict]:
    """Optimizer groups (Sec 4.1.4): the CTR part (CTR model, prompt generator, heads) at `lr`, the PLM at
    `plm_lr` (0 freezes it: see training.make_optimizer)."""
    plm_ids = {id(p) for p in plm.parameters()}
    return [{"params": [p for p in model.parameters() if id(p) not in plm_ids], "lr": lr},
            {"params": list(plm.parameters()), "lr": plm_lr}]


def pretraining_batcher(split: Split, cache, tokenizer, objective: str, seed: int = 0):
    """The pretraining batches of a PLM family: PA-MLM masking ("mlm") or causal-LM labels ("clm")."""
    if objective == "clm":
        return text_batcher(split, cache, clm=True)
    return text_batcher(split, cache, mlm=mlm_settings(tokenizer, seed))


def clickprompt_config(core, ds: PreparedDataset, cfg: RunConfig, kind: str, tokenizer_dir: str) -> dict:
    return {
        **model_config(core, ds, cfg, kind),
        "plm_name": cfg.plm.name,
        "hf_config": core.plm.config.to_dict(),
        "tokenizer": tokenizer_dir,
    }


@torch.no_grad()
def masked_value_accuracy(model, split: Split, cache, tokenizer, cfg: RunConfig, n: int = 2048, seed: int = 0) -> dict:
    """Masked-token accuracy on value tokens (not field names, "is", "."), with the true prompts, with
    prompts shuffled across the batch, and with no prompts: the evidence that the PLM reads them.
    15% of each sample's value tokens are replaced by the mask token, with a fixed seed. For a
    decoder-only PLM (PA-CLM) it is the next-token accuracy on every value token instead, given the
    text before it. For BART the decoder reads the uncorrupted text (as in pretraining)."""
    from clickprompt.masking import mask_tokens

    clm = model.core.plm.objective == "clm"

    device = next(model.parameters()).device
    dtype = autocast_dtype(cfg.train.precision, device)
    rows = np.random.default_rng(seed).permutation(len(split))[:n]
    gen = torch.Generator().manual_seed(seed)
    hits = {"true": 0, "shuffled": 0, "none": 0}
    total = 0
    model.eval()
    for start in range(0, len(rows), 256):
        idx = rows[start : start + 256]
        tok = cache.assemble(split.text_index[idx], with_fields=True)
        input_ids = torch.from_numpy(tok["input_ids"])
        attention = torch.from_numpy(tok["attention_mask"])
        special = torch.from_numpy((tok["token_field"] < 0) & (tok["attention_mask"] == 1))
        if clm:  # the state before each value token predicts it
            masked, where = input_ids, torch.from_numpy(tok["value_mask"])[:, 1:]  # (B, Z - 1)
            labels = input_ids[:, 1:].masked_fill(~where, -100)
        else:
            masked, labels = mask_tokens(
                input_ids, attention, special, tokenizer.mask_token_id, len(tokenizer), prob=0.15, generator=gen,
                special_ids=list(tokenizer.all_special_ids), eligible_mask=torch.from_numpy(tok["value_mask"]),
                mask_ratio=1.0, random_ratio=0.0,
            )
            where = labels.ne(-100)
        total += int(where.sum())
        ids = torch.from_numpy(split.ids[idx]).to(device)
        for mode in hits:
            with autocast(device, dtype):
                _, hidden = model.core(ids, masked.to(device), attention.to(device), prompt_mode=mode,
                                       target_ids=input_ids.to(device) if model.core.plm.is_encoder_decoder else None)
                logits = model.core.plm.mlm_logits(hidden[:, :-1] if clm else hidden, where.to(device))
            hits[mode] += int((logits.argmax(-1).cpu() == labels[where]).sum())
    return {f"value_token_acc_{m}": hits[m] / max(total, 1) for m in hits} | {"masked_value_tokens": total}


def _tokenizer_dir(run_dir: Path, tokenizer) -> str:
    if is_main_process():
        tokenizer.save_pretrained(run_dir / "tokenizer")
    return "tokenizer"


def pretrain(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, force: bool = False,
             progress: bool = True, max_train_samples: int | None = None) -> dict:
    """PA-MLM pretraining (Sec 3.5.1). Saves CTR model, generator and PLM (with its token head).

    The objective follows the PLM family: PA-MLM for BERT, RoBERTa and BART (masked tokens; for BART
    the decoder reconstructs them), PA-CLM for GPT-2 (next-token loss, App. C.3). The validation loss
    is reported as `valid_mlm_loss` or `valid_clm_loss` accordingly (`objective` says which)."""
    from clickprompt.data.text import TokenCache
    from clickprompt.model import ClickPromptForPretraining

    run_dir = Path(run_dir)
    if (run_dir / "results.json").exists() and not (force or resume):
        return json.loads((run_dir / "results.json").read_text())
    ds = load_dataset(cfg)
    seed_everything(cfg.train.seed)
    core, tokenizer, info = build_clickprompt(cfg, ds.spec)
    model = ClickPromptForPretraining(core)
    cache = TokenCache.for_dataset(tokenizer, ds, cfg.data.max_length)
    _write_run_config(run_dir, cfg, "pretrain", {"plm_newly_initialized": list(info.newly_initialized)})
    tok_dir = _tokenizer_dir(run_dir, tokenizer)
    train_split = ds.split("train")
    n_train = len(train_split) if max_train_samples is None else min(max_train_samples, len(train_split))
    objective = core.plm.objective  # "mlm" or "clm"
    loss_key = f"{objective}_loss"
    valid = ds.split("valid")
    valid_mb = pretraining_batcher(valid, cache, tokenizer, objective, seed=0)  # fixed masks for validation
    n_valid_eval = min(len(valid), 2048)

    def evaluate(m) -> dict:  # validation LM loss on a fixed subset; masks are hashed, so no RNG is drawn
        device = next(m.parameters()).device
        losses = []
        m.eval()
        with torch.no_grad():
            for s in range(0, n_valid_eval, 256):
                batch = to_device_batch(valid_mb(np.arange(s, min(s + 256, n_valid_eval))), device)
                with autocast(device, autocast_dtype(cfg.train.precision, device)):
                    losses.append(float(m(**batch)["loss"]))
        m.train()
        return {loss_key: float(np.mean(losses))}

    groups = plm_param_groups(model, core.plm, cfg.train.lr, cfg.train.plm_lr)
    t0 = time.perf_counter()
    result = train(
        model, pretraining_batcher(train_split, cache, tokenizer, objective, seed=cfg.train.seed), n_train, cfg.train,
        run_dir, evaluate=evaluate, monitor=loss_key, mode="min", param_groups=groups, schedule="linear", resume=resume, progress=progress,
        checkpoint_config=clickprompt_config(core, ds, cfg, "clickprompt-pretrain", tok_dir), early_stopping=False,
    )
    wall = time.perf_counter() - t0
    acc = masked_value_accuracy(model, valid, cache, tokenizer, cfg)
    out = {
        "stage": "pretrain", "dataset": ds.name, "seed": cfg.train.seed, "train_samples_per_epoch": n_train,
        "epochs_run": result.epochs_run, "steps": result.steps, "best_epoch": result.best_epoch,
        "objective": "PA-CLM" if objective == "clm" else "PA-MLM", f"valid_{loss_key}": result.best_metric,
        "train_samples_per_s": round(result.samples_per_s, 1),
        "wall_s": round(wall, 1), "plm": cfg.plm.name, "plm_newly_initialized": list(info.newly_initialized), **acc,
    }
    if is_main_process():
        atomic_write_text(run_dir / "results.json", json.dumps(out, indent=2))
    return out


def to_device_batch(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _load_pretrained_state(pretrained: str | Path, ds: PreparedDataset) -> tuple[dict, dict]:
    ckpt = checkpoint_dir(pretrained)
    config, state = load_checkpoint(ckpt)
    if config.get("kind") != "clickprompt-pretrain":
        raise CheckpointError(f"{ckpt}: holds a {config.get('kind')!r} checkpoint, not a PA-MLM pretraining run")
    check_fingerprint(config, ds.fingerprint, ckpt)
    return config, state


def finetune(cfg: RunConfig, run_dir: str | Path, *, pretrained: str | Path | None, with_plm: bool,
             resume: bool = False, force: bool = False, progress: bool = True) -> dict:
    """Finetune with PLM (Eq. 9) or without (Eq. 10), from a PA-MLM run (None: the w/o Pretrain ablation)."""
    from clickprompt.data.text import TokenCache
    from clickprompt.model import ClickPromptForCTR

    run_dir = Path(run_dir)
    if (run_dir / "results.json").exists() and not (force or resume):
        return json.loads((run_dir / "results.json").read_text())
    ds = load_dataset(cfg)
    seed_everything(cfg.train.seed)
    pre_cfg, pre_state = _load_pretrained_state(pretrained, ds) if pretrained else (None, None)
    if pre_cfg is not None:  # the architecture comes from the pretraining run
        pre_run = RunConfig.from_dict(pre_cfg["run_config"])
        cfg.ctr, cfg.plm.name = pre_run.ctr, pre_run.plm.name
        cfg.prompt.num_prompts, cfg.prompt.strategy = pre_run.prompt.num_prompts, pre_run.prompt.strategy
    stage = "finetune-with-plm" if with_plm else "finetune-without-plm"
    extra = {"stage": stage, "pretrained": str(pretrained) if pretrained else None, "model": cfg.ctr.model}
    _write_run_config(run_dir, cfg, stage, {"pretrained": extra["pretrained"]})

    if not with_plm:  # Eq. 10: the bare CTR model, initialised from pretraining
        model = CTRClassifier(create_ctr(cfg.ctr.model, ds.spec, cfg.ctr))
        if pre_state is not None:
            ctr_state = {k[len("core."):]: v for k, v in pre_state.items() if k.startswith("core.ctr.")}
            missing, unexpected = model.load_state_dict(ctr_state, strict=False)
            if unexpected or [k for k in missing if not k.startswith("ctr.head.")]:
                raise CheckpointError(f"{pretrained}: CTR weights do not fit ({missing[:3]}, {unexpected[:3]})")
        mb = ctr_batcher
        result = train(
            model, mb(ds.split("train")), len(ds.split("train")), cfg.train, run_dir,
            evaluate=evaluator(mb(ds.split("valid")), ds.split("valid"), cfg),
            checkpoint_config=model_config(model, ds, cfg, "ctr"), resume=resume, progress=progress,
        )
        return finish_run(run_dir, model, mb, ds, cfg, result, extra)

    core, tokenizer, info = build_clickprompt(
        cfg, ds.spec, plm_weights=pre_state is None, hf_config=pre_cfg["hf_config"] if pre_cfg else None
    )
    model = ClickPromptForCTR(core, pooling=cfg.plm.pooling)
    if pre_state is not None:
        core_state = {k[len("core."):]: v for k, v in pre_state.items() if k.startswith("core.")}
        if core.generator is None:  # w/o Prompt (Table 5): keep the PA-MLM CTR model and PLM, drop the interface
            core_state = {k: v for k, v in core_state.items() if not k.startswith("generator.")}
        load_state_into(core, core_state, pretrained)
    cache = TokenCache.for_dataset(tokenizer, ds, cfg.data.max_length)
    tok_dir = _tokenizer_dir(run_dir, tokenizer)
    groups = plm_param_groups(model, core.plm, cfg.train.lr, cfg.train.plm_lr)

    def mb(split):
        return text_batcher(split, cache)

    result = train(
        model, mb(ds.split("train")), len(ds.split("train")), cfg.train, run_dir,
        evaluate=evaluator(mb(ds.split("valid")), ds.split("valid"), cfg), param_groups=groups,
        checkpoint_config=clickprompt_config(core, ds, cfg, "clickprompt-ctr", tok_dir), resume=resume,
        progress=progress,
    )
    extra["alpha"] = float(model.alpha.detach())
    return finish_run(run_dir, model, mb, ds, cfg, result, extra)


def load_run_model(checkpoint: str | Path, ds: PreparedDataset | None = None):
    """Rebuild any checkpoint: returns (model, config, tokenizer or None). Refuses other data's checkpoints."""
    from transformers import AutoTokenizer

    from clickprompt.data.schema import FeatureSpec
    from clickprompt.model import ClickPromptForCTR, ClickPromptForPretraining

    ckpt = checkpoint_dir(checkpoint)
    config, state = load_checkpoint(ckpt)
    if ds is not None:
        check_fingerprint(config, ds.fingerprint, ckpt)
    if config.get("kind") == "ctr":
        return load_ctr_classifier(ckpt, ds), config, None
    run_cfg = RunConfig.from_dict(config["run_config"])
    spec = FeatureSpec.from_dict(config["spec"])
    core, tokenizer, _ = build_clickprompt(run_cfg, spec, plm_weights=False, hf_config=config["hf_config"])
    tok_path = ckpt.parent / config.get("tokenizer", "tokenizer")
    if tok_path.is_dir():
        tokenizer = AutoTokenizer.from_pretrained(tok_path, local_files_only=True)
    if config["kind"] == "clickprompt-pretrain":
        model = ClickPromptForPretraining(core)
    elif config["kind"] == "clickprompt-ctr":
        model = ClickPromptForCTR(core, pooling=run_cfg.plm.pooling)
    else:
        raise CheckpointError(f"{ckpt}: unknown checkpoint kind {config.get('kind')!r}")
    load_state_into(model, state, ckpt)
    model.eval()
    return model, config, tokenizer


def dataset_for_checkpoint(config: dict, processed_dir: str | Path | None = None) -> PreparedDataset:
    run_cfg = RunConfig.from_dict(config["run_config"])
    root = Path(processed_dir or run_cfg.data.processed_dir)
    return PreparedDataset(root / config["dataset"])


def predict_probs(model, config: dict, tokenizer, ds: PreparedDataset, split_name: str, batch_size: int = 512,
                  rows: np.ndarray | None = None) -> np.ndarray:
    """Click probabilities of a CTR-kind or ClickPrompt-CTR checkpoint on a split (or some of its rows)."""
    from clickprompt.data.text import TokenCache

    split = ds.split(split_name)
    if config["kind"] == "ctr":
        mb = ctr_batcher(split)
    else:
        run_cfg = RunConfig.from_dict(config["run_config"])
        mb = text_batcher(split, TokenCache.for_dataset(tokenizer, ds, run_cfg.data.max_length))
    if rows is None:
        rows = np.arange(len(split))
    logits = predict(model, lambda idx: mb(rows[idx]), len(rows), batch_size)
    return 1 / (1 + np.exp(-logits))


def evaluate_run(run: str | Path, split: str = "test", *, baseline: str | Path | None = None,
                 processed_dir: str | Path | None = None) -> dict:
    """Metrics of a run's best checkpoint; with a baseline run, Rel.Impr and DeLong's p-value."""
    from clickprompt.data.text import TokenCache
    from clickprompt.evaluation import delong_test, rel_impr

    model, config, tokenizer = load_run_model(run)
    ds = dataset_for_checkpoint(config, processed_dir)
    check_fingerprint(config, ds.fingerprint, run)
    if config["kind"] == "clickprompt-pretrain":
        run_cfg = RunConfig.from_dict(config["run_config"])
        cache = TokenCache.for_dataset(tokenizer, ds, run_cfg.data.max_length)
        return {"run": str(run), "split": split, **masked_value_accuracy(model, ds.split(split), cache, tokenizer, run_cfg)}
    labels = ds.split(split).labels
    probs = predict_probs(model, config, tokenizer, ds, split)
    out = {"run": str(run), "split": split, "kind": config["kind"], **ctr_metrics(labels, probs)}
    if baseline is not None:
        b_model, b_config, b_tok = load_run_model(baseline, ds)
        b_probs = predict_probs(b_model, b_config, b_tok, ds, split)
        b = ctr_metrics(labels, b_probs)
        _, _, p = delong_test(labels, probs, b_probs)
        out["baseline"] = {"run": str(baseline), "auc": b["auc"], "logloss": b["logloss"]}
        out["rel_impr"] = rel_impr(out["auc"], b["auc"])
        out["delong_p"] = p
    return out


def quick(dataset: str = "ml-100k", out: str | Path = "runs/quick", *, profile: str = "quick",
          processed_dir: str | Path | None = None, plm: str | None = None, seed: int | None = None,
          force: bool = False, progress: bool = True) -> dict:
    """The whole pipeline in one call: DCNv2 from scratch, PA-MLM, finetuning without and with the PLM,
    then a comparison table (AUC, log loss, Rel.Impr and DeLong's p against the DCNv2 baseline)."""
    from clickprompt.config import load_stage_config
    from clickprompt.evaluation import delong_test, rel_impr

    out = Path(out)

    def cfg_for(stage: str) -> RunConfig:
        cfg = load_stage_config(profile, stage)
        cfg.data.dataset = dataset
        if processed_dir is not None:
            cfg.data.processed_dir = str(processed_dir)
        if plm is not None:
            cfg.plm.name = plm
        if seed is not None:
            cfg.train.seed = seed
        return cfg

    timings, results = {}, {}
    steps = [
        ("ctr", lambda: train_ctr(cfg_for("train-ctr"), out / "ctr", force=force, progress=progress)),
        ("pretrain", lambda: pretrain(cfg_for("pretrain"), out / "pretrain", force=force, progress=progress)),
        ("without-plm", lambda: finetune(cfg_for("finetune-without-plm"), out / "finetune-without-plm",
                                         pretrained=out / "pretrain", with_plm=False, force=force, progress=progress)),
        ("with-plm", lambda: finetune(cfg_for("finetune-with-plm"), out / "finetune-with-plm",
                                      pretrained=out / "pretrain", with_plm=True, force=force, progress=progress)),
    ]
    for name, step in steps:
        t0 = time.perf_counter()
        if progress:
            print(f"[quick] {name} ...", flush=True)
        results[name] = step()
        timings[name] = round(time.perf_counter() - t0, 1)
    ctr_name = cfg_for("train-ctr").ctr.model
    labels, base_probs = read_test_predictions(out / "ctr")
    rows = []
    for name, label in (("ctr", f"{ctr_name} (from scratch)"), ("without-plm", "ClickPrompt w/o PLM"),
                        ("with-plm", "ClickPrompt with PLM")):
        r = results[name]
        run_dir = out / ("ctr" if name == "ctr" else f"finetune-{name}")
        _, probs = read_test_predictions(run_dir)
        p = None if name == "ctr" else delong_test(labels, probs, base_probs)[2]
        rows.append({
            "model": label, "test_auc": r["test"]["auc"], "test_logloss": r["test"]["logloss"],
            "rel_impr": None if name == "ctr" else rel_impr(r["test"]["auc"], results["ctr"]["test"]["auc"]),
            "delong_p": p, "epochs": r["epochs_run"], "steps": r["steps"], "wall_s": timings[name],
        })
    pre = results["pretrain"]
    lines = [
        f"Dataset {dataset}, profile {profile!r}, PLM {cfg_for('pretrain').plm.name}, seed {cfg_for('pretrain').train.seed}.",
        f"PA-MLM: {pre['steps']} steps ({pre['train_samples_per_epoch']:,} samples/epoch), {timings['pretrain']} s; "
        f"masked value-token accuracy true {pre['value_token_acc_true']:.3f} / shuffled "
        f"{pre['value_token_acc_shuffled']:.3f} / none {pre['value_token_acc_none']:.3f}.",
        "",
        "| model | test AUC | test log loss | Rel.Impr vs baseline | DeLong p | epochs | steps | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rel = "-" if r["rel_impr"] is None else f"{100 * r['rel_impr']:+.2f}%"
        p = "-" if r["delong_p"] is None else f"{r['delong_p']:.3g}"
        lines.append(f"| {r['model']} | {r['test_auc']:.4f} | {r['test_logloss']:.4f} | {rel} | {p} | "
                     f"{r['epochs']} | {r['steps']} | {r['wall_s']} |")
    lines.append(f"\nTotal wall time {sum(timings.values()):.0f} s. One seed: differences below ~0.004 AUC are within "
                 "seed-to-seed noise on ML-100K; see the README for the multi-seed results.")
    table = "\n".join(lines)
    summary = {"rows": rows, "pretrain": pre, "timings_s": timings, "table": table}
    if is_main_process():
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
        atomic_write_text(out / "summary.md", table + "\n")
    return summary
