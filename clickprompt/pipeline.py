"""The stages as library functions: the CLI, the notebooks and the dashboard all call these.

    train_ctr(cfg, run_dir)          a CTR backbone from scratch (the baselines of Table 2)
    pretrain(cfg, run_dir)           PA-MLM (Sec 3.5.1); PA-CLM for decoder-only PLMs (App. C.3)
    finetune(cfg, run_dir, ...)      with PLM (Eq. 9) or without (Eq. 10)
    evaluate_run(run_dir)            test metrics of a finished run
    quick(...)                       all four in a row, with a comparison table
    control_act(...)                 the positive control: DCNv2 vs ClickPrompt with PLM where only text tells
    main_job(...)                    `clickprompt quick`: control_act (act 1), then quick (act 2), one summary

Each stage validates its settings, then writes one run directory through clickprompt.rundir.RunDir
(layout, lock, reuse rule, manifests): a finished run with the same settings is read back, one with
other settings is refused (unless `force`), a killed one continues with `resume`.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np

from clickprompt.batching import ctr_batcher, pretraining_batcher, text_batcher
from clickprompt.checkpoint import atomic_write_text, load_checkpoint
from clickprompt.config import ConfigError, RunConfig, inherit_architecture, validate
from clickprompt.ctr import create_ctr
from clickprompt.data.dataset import PreparedDataset, Split
from clickprompt.errors import CheckpointError
from clickprompt.evaluation import ctr_metrics, mean_std
from clickprompt.model import CTRClassifier, build_clickprompt, checkpoint_config
from clickprompt.rundir import ModelKind, RunDir, Stage, settings_sha256
from clickprompt.training import autocast_dtype, is_main_process, plm_param_groups, predict, seed_everything, train


def load_dataset(cfg: RunConfig) -> PreparedDataset:
    return PreparedDataset(Path(cfg.data.processed_dir) / cfg.data.dataset)


def evaluator(make_batch, split: Split, cfg: RunConfig):
    """Validation AUC and log loss of the current weights (the monitor of the CTR stages)."""
    def evaluate(model) -> dict:
        device = next(model.parameters()).device
        logits = predict(model, make_batch, len(split), cfg.train.eval_batch_size, device,
                         autocast_dtype(cfg.train.precision, device))
        m = ctr_metrics(split.labels, 1 / (1 + np.exp(-logits)))
        return {"valid_auc": m["auc"], "valid_logloss": m["logloss"]}

    return evaluate


def run_settings(cfg: RunConfig, ds: PreparedDataset, **extra) -> dict:
    """What a run directory's config.json records: the resolved settings, the data's fingerprint, extras."""
    return {**cfg.to_dict(), "data_fingerprint": ds.fingerprint, **extra}


def _begin(stage: Stage, cfg: RunConfig) -> PreparedDataset:
    """Everything that can be checked before a run directory exists: settings, then the prepared data."""
    validate(cfg, stage)
    return load_dataset(cfg)


def training_cache(cache, cfg: RunConfig):
    """The token cache a training stage batches from: on the training device when train.device_batches."""
    if not cfg.train.device_batches:
        return cache
    from clickprompt.data.text import DeviceTokenCache
    from clickprompt.training import resolve_device

    return DeviceTokenCache(cache, resolve_device(cfg.train.device))


def _check_plm(cfg: RunConfig) -> None:
    from clickprompt.plm import resolve_plm

    resolve_plm(cfg.plm.name)  # PLMNotFoundError (one line) before anything is written


def finish_run(session, model, make_batch, ds: PreparedDataset, cfg: RunConfig, result, extra: dict) -> dict:
    """Score valid and test with the best weights; write the test predictions and results.json."""
    device = next(model.parameters()).device
    dtype = autocast_dtype(cfg.train.precision, device)
    out = {"dataset": ds.name, "data_fingerprint": ds.fingerprint, "seed": cfg.train.seed}
    best = next((h for h in result.history if h["epoch"] == result.best_epoch and "valid_auc" in h), None)
    names = ("test",) if best is not None else ("valid", "test")
    if best is not None:  # the best epoch's validation scores were computed with these very weights
        valid = ds.split("valid")
        out["valid"] = {"auc": best["valid_auc"], "logloss": best["valid_logloss"], "n": len(valid),
                        "positive_rate": float(valid.labels.mean())}
    for name in names:
        split = ds.split(name)
        logits = predict(model, make_batch(split), len(split), cfg.train.eval_batch_size, device, dtype)
        probs = 1 / (1 + np.exp(-logits))
        out[name] = ctr_metrics(split.labels, probs)
        if name == "test" and session.main:
            session.run.write_predictions(split.labels, probs)
    out.update(
        best_epoch=result.best_epoch, epochs_run=result.epochs_run, steps=result.steps,
        train_samples_per_s=round(result.samples_per_s, 1), stopped_early=result.stopped_early, **extra,
    )
    return session.finish(out)


def train_ctr(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, force: bool = False, progress: bool = True) -> dict:
    """Train cfg.ctr.model from scratch on cfg.data.dataset (App. B.1 protocol)."""
    ds = _begin(Stage.TRAIN_CTR, cfg)
    settings = run_settings(cfg, ds)
    with RunDir(run_dir).open(Stage.TRAIN_CTR, settings, force=force, resume=resume) as session:
        if session.reused is not None:
            return session.reused
        seed_everything(cfg.train.seed)
        model = CTRClassifier(create_ctr(cfg.ctr.model, ds.spec, cfg.ctr))
        model.config = checkpoint_config(ModelKind.CTR, ds, cfg, settings_sha256(session.settings))
        result = train(
            model, ctr_batcher(ds.split("train")), len(ds.split("train")), cfg.train, session.run,
            evaluate=evaluator(ctr_batcher(ds.split("valid")), ds.split("valid"), cfg),
            checkpoint_config=model.config, resume=session.resume, progress=progress,
        )
        return finish_run(session, model, ctr_batcher, ds, cfg, result, {"model": cfg.ctr.model})


def summarize_seeds(run_dirs: list[Path], out: Path | None = None) -> dict:
    rows = [RunDir(d).read_results() for d in run_dirs]
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


def save_tokenizer(session, tokenizer) -> str:
    if session.main:
        tokenizer.save_pretrained(session.run.tokenizer_dir)
    return session.run.tokenizer_dir.name


def text_checkpoint_config(kind: ModelKind, ds, cfg: RunConfig, session, hf_config: dict, tokenizer_dir: str,
                           **extra) -> dict:
    """The checkpoint config of a model that reads text: its PLM's Hugging Face config and tokenizer folder."""
    return checkpoint_config(kind, ds, cfg, settings_sha256(session.settings), plm_name=cfg.plm.name,
                             hf_config=hf_config, tokenizer=tokenizer_dir, **extra)


def _clickprompt_checkpoint_config(kind: ModelKind, core, ds, cfg: RunConfig, session, tokenizer_dir: str) -> dict:
    return text_checkpoint_config(kind, ds, cfg, session, core.plm.config.to_dict(), tokenizer_dir)


def pretrain(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, force: bool = False,
             progress: bool = True, max_train_samples: int | None = None) -> dict:
    """PA-MLM pretraining (Sec 3.5.1). Saves CTR model, generator and PLM (with its token head).

    The objective follows the PLM family: PA-MLM for BERT, RoBERTa and BART (masked tokens; for BART
    the decoder reconstructs them), PA-CLM for GPT-2 (next-token loss, App. C.3). After every epoch the
    diagnostics of clickprompt.diagnostics go to metrics.jsonl (validation and training-subset LM loss,
    their gap, value-token accuracy with true / shuffled / no prompts); the epoch with the lowest
    validation loss is kept. The loss is reported as `valid_mlm_loss` or `valid_clm_loss` (`objective`)."""
    from clickprompt.data.text import TokenCache
    from clickprompt.diagnostics import VALUE_ACCURACY, pretraining_evaluator
    from clickprompt.model import ClickPromptForPretraining

    ds = _begin(Stage.PRETRAIN, cfg)
    _check_plm(cfg)
    settings = run_settings(cfg, ds, max_train_samples=max_train_samples)
    with RunDir(run_dir).open(Stage.PRETRAIN, settings, force=force, resume=resume) as session:
        if session.reused is not None:
            return session.reused
        seed_everything(cfg.train.seed)
        core, tokenizer, info = build_clickprompt(cfg, ds.spec)
        model = ClickPromptForPretraining(core)
        cache = training_cache(TokenCache.for_dataset(tokenizer, ds, cfg.data.max_length, cfg.data.pad_to_multiple), cfg)
        if session.main:
            session.run.write_config({**session.settings, "plm_newly_initialized": list(info.newly_initialized)})
        tok_dir = save_tokenizer(session, tokenizer)
        train_split, valid = ds.split("train"), ds.split("valid")
        n_train = len(train_split) if max_train_samples is None else min(max_train_samples, len(train_split))
        objective = core.plm.objective  # "mlm" or "clm"
        loss_key = f"valid_{objective}_loss"
        evaluate = pretraining_evaluator(  # fixed masks (seed 0) on both subsets, so epochs compare
            pretraining_batcher(train_split, cache, tokenizer, objective, seed=0),
            pretraining_batcher(valid, cache, tokenizer, objective, seed=0), n_train, valid, cache, tokenizer, cfg,
            objective)
        model.config = _clickprompt_checkpoint_config(ModelKind.PRETRAIN, core, ds, cfg, session, tok_dir)
        t0 = time.perf_counter()
        result = train(
            model, pretraining_batcher(train_split, cache, tokenizer, objective, seed=cfg.train.seed), n_train,
            cfg.train, session.run, evaluate=evaluate, monitor=loss_key, mode="min",
            param_groups=plm_param_groups(model, core.plm, cfg.train.lr, cfg.train.plm_lr), schedule="linear",
            resume=session.resume, progress=progress, checkpoint_config=model.config,
            early_stopping=cfg.train.pretrain_patience is not None, patience=cfg.train.pretrain_patience,
        )
        wall = time.perf_counter() - t0
        best = next((h for h in result.history if h["epoch"] == result.best_epoch), {})  # the weights kept
        acc = {k: best.get(k) for k in (*VALUE_ACCURACY, "masked_value_tokens")}
        out = {
            "dataset": ds.name, "data_fingerprint": ds.fingerprint, "seed": cfg.train.seed,
            "train_samples_per_epoch": n_train, "epochs_run": result.epochs_run, "steps": result.steps,
            "best_epoch": result.best_epoch, "objective": "PA-CLM" if objective == "clm" else "PA-MLM",
            loss_key: result.best_metric, f"train_eval_{objective}_loss": best.get(f"train_eval_{objective}_loss"),
            "generalisation_gap": best.get("generalisation_gap"),
            "train_samples_per_s": round(result.samples_per_s, 1), "wall_s": round(wall, 1), "plm": cfg.plm.name,
            "plm_newly_initialized": list(info.newly_initialized), **acc,
        }
        return session.finish(out)


def _pretraining_run(pretrained: str | Path, ds: PreparedDataset) -> tuple[RunDir, dict]:
    """The PA-MLM run a finetuning starts from, and its checkpoint config (checked: kind, data)."""
    pre = RunDir(pretrained)
    return pre, pre.start_point(ds, ModelKind.PRETRAIN, "a PA-MLM pretraining run")


def finetune(cfg: RunConfig, run_dir: str | Path, *, pretrained: str | Path | None, with_plm: bool,
             init_ctr: str | Path | None = None, resume: bool = False, force: bool = False,
             progress: bool = True) -> dict:
    """Finetune with PLM (Eq. 9) or without (Eq. 10), from a PA-MLM run (None: the w/o Pretrain ablation).
    The architecture (ctr.*, plm.name, prompt.num_prompts, prompt.strategy) is the pretraining run's;
    a setting given on purpose that contradicts it is refused (config.inherit_architecture).
    `init_ctr` (with the PLM only; not the paper's recipe): a finished click-trained CTR run (train-ctr or
    finetune-without-plm, same CTR architecture and data) whose CTR model and head replace the PA-MLM
    ones, so that the with-PLM steps go to what the text adds rather than to relearning the ids."""
    stage = Stage.FINETUNE_WITH_PLM if with_plm else Stage.FINETUNE_WITHOUT_PLM
    cfg = copy.deepcopy(cfg)
    ds = _begin(stage, cfg)
    pre_cfg = None
    extra = {"pretrained": None, "pretrained_weights": None}
    if pretrained:
        pre, pre_cfg = _pretraining_run(pretrained, ds)
        inherit_architecture(cfg, RunConfig.from_dict(pre_cfg["run_config"]), str(pre.path))
        weights = pre.weights_sha256()  # before any write
        extra = {"pretrained": str(pretrained), "pretrained_weights": weights}
    elif with_plm:
        _check_plm(cfg)
    if init_ctr is not None:
        extra.update(_ctr_init_run(init_ctr, ds, cfg, with_plm))
    validate(cfg, stage)
    with RunDir(run_dir).open(stage, run_settings(cfg, ds, **extra), force=force, resume=resume) as session:
        if session.reused is not None:
            return session.reused
        seed_everything(cfg.train.seed)
        model, tokenizer = finetune_model(cfg, ds, pretrained=pretrained, with_plm=with_plm, pretrained_config=pre_cfg,
                                          init_ctr=init_ctr)
        info = {"pretrained": extra["pretrained"], "model": cfg.ctr.model,
                **({"init_ctr": extra["init_ctr"]} if init_ctr is not None else {})}
        if not with_plm:  # Eq. 10: the bare CTR model
            model.config = checkpoint_config(ModelKind.CTR, ds, cfg, settings_sha256(session.settings))
            make_batch, groups = ctr_batcher, None
        else:  # Eq. 9: CTR model, prompts and PLM, alpha-weighted heads
            from clickprompt.data.text import TokenCache

            cache = training_cache(TokenCache.for_dataset(tokenizer, ds, cfg.data.max_length, cfg.data.pad_to_multiple), cfg)
            tok_dir = save_tokenizer(session, tokenizer)
            model.config = _clickprompt_checkpoint_config(ModelKind.CLICKPROMPT_CTR, model.core, ds, cfg, session, tok_dir)
            groups = plm_param_groups(model, model.core.plm, cfg.train.lr, cfg.train.plm_lr)

            def make_batch(split):
                return text_batcher(split, cache)

        result = train(
            model, make_batch(ds.split("train")), len(ds.split("train")), cfg.train, session.run,
            evaluate=evaluator(make_batch(ds.split("valid")), ds.split("valid"), cfg), param_groups=groups,
            checkpoint_config=model.config, resume=session.resume, progress=progress,
        )
        if with_plm:
            info["alpha"] = float(model.alpha.detach())
        return finish_run(session, model, make_batch, ds, cfg, result, info)


def _ctr_init_run(init_ctr: str | Path, ds: PreparedDataset, cfg: RunConfig, with_plm: bool) -> dict:
    """Checks of finetune's `init_ctr` before any write: a finished CTR-only run on the same data with the
    CTR architecture this finetuning has; its run-key entries (path, weights' SHA-256)."""
    if not with_plm:
        raise ConfigError(f"init_ctr = {init_ctr}: only a finetuning with the PLM takes its CTR part from another run")
    run = RunDir(init_ctr)
    config = run.start_point(ds, ModelKind.CTR, "a click-trained CTR model (train-ctr or finetune-without-plm)")
    theirs, mine = (json.loads(json.dumps(c.to_dict()["ctr"])) for c in (RunConfig.from_dict(config["run_config"]), cfg))
    diff = [f"ctr.{k}: {theirs.get(k)!r} there, {v!r} here" for k, v in mine.items() if theirs.get(k) != v]
    if diff:
        raise ConfigError(f"{init_ctr}: its CTR model differs from this finetuning's ({'; '.join(diff)})")
    return {"init_ctr": str(init_ctr), "init_ctr_weights": run.weights_sha256()}


def finetune_model(cfg: RunConfig, ds: PreparedDataset, *, pretrained: str | Path | None, with_plm: bool,
                   pretrained_config: dict | None = None, init_ctr: str | Path | None = None):
    """(model, tokenizer or None): what a finetuning starts from, before its first step. Without the PLM
    (Eq. 10) the bare CTR model, its embedding and interaction layers taken from the PA-MLM run (the CTR
    head is new); with the PLM (Eq. 9) CTR model, prompt generator and PLM all from the PA-MLM run (the
    w/o Prompt ablation drops the generator), or, without a pretraining run, a fresh CTR model and
    generator beside the published PLM. The architecture is the pretraining run's."""
    from clickprompt.checkpoint import checkpoint_dir, load_state_into
    from clickprompt.model import ClickPromptForCTR

    pre_state = None
    if pretrained:
        if pretrained_config is None:
            pretrained_config = _pretraining_run(pretrained, ds)[1]
        cfg = copy.deepcopy(cfg)
        inherit_architecture(cfg, RunConfig.from_dict(pretrained_config["run_config"]), str(pretrained))
        pre_state = transferred_state(load_checkpoint(checkpoint_dir(pretrained))[1], cfg.train.transfer)
    if not with_plm:
        model = CTRClassifier(create_ctr(cfg.ctr.model, ds.spec, cfg.ctr))
        if pre_state is not None:
            ctr_state = {k[len("core."):]: v for k, v in pre_state.items() if k.startswith("core.ctr.")}
            missing = _load_part(model, ctr_state, pretrained)
            if cfg.train.transfer != "embeddings" and [k for k in missing if not k.startswith("ctr.head.")]:
                raise CheckpointError(f"{pretrained}: CTR weights do not fit (missing {missing[:3]})")
        return model, None
    whole = pre_state is not None and cfg.train.transfer == "all"  # else the published PLM, a fresh generator
    core, tokenizer, _ = build_clickprompt(cfg, ds.spec, plm_weights=not whole,
                                           hf_config=pretrained_config["hf_config"] if whole else None)
    model = ClickPromptForCTR(core, pooling=cfg.plm.pooling)
    if pre_state is not None:
        core_state = {k[len("core."):]: v for k, v in pre_state.items() if k.startswith("core.")}
        if core.generator is None:  # w/o Prompt (Table 5): keep the PA-MLM CTR model and PLM, drop the interface
            core_state = {k: v for k, v in core_state.items() if not k.startswith("generator.")}
        if whole:
            load_state_into(core, core_state, pretrained)
        else:
            _load_part(core, core_state, pretrained)
    if init_ctr is not None:  # the CTR model and its head from a click-trained run (CTRClassifier: keys "ctr.*")
        ctr_state = load_checkpoint(checkpoint_dir(init_ctr))[1]
        missing = [k for k in _load_part(core, ctr_state, init_ctr) if k.startswith("ctr.")]
        if missing:
            raise CheckpointError(f"{init_ctr}: CTR weights do not fit (missing {missing[:3]})")
    return model, tokenizer


EMBEDDING_TABLES = ("core.ctr.embedding.", "core.ctr.linear.")  # field embeddings and first-order weights


def transferred_state(state: dict, transfer: str) -> dict:
    """The part of a PA-MLM checkpoint a finetuning takes over (train.transfer): "all" of it (the CTR head
    too, which PA-MLM leaves at its initial values), the CTR model without its head ("interaction"), or
    its embedding tables ("embeddings")."""
    if transfer == "embeddings":
        return {k: v for k, v in state.items() if k.startswith(EMBEDDING_TABLES)}
    if transfer == "interaction":
        return {k: v for k, v in state.items() if k.startswith("core.ctr.") and not k.startswith("core.ctr.head.")}
    return state


def _load_part(module, state: dict, source) -> list[str]:
    """Load a subset of a module's weights; every given weight must fit (the rest keeps its fresh init).
    Returns the names of the module's weights that were not given."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    if unexpected or not state:
        raise CheckpointError(f"{source}: weights do not fit the model (unexpected {unexpected[:3]}, {len(state)} given)")
    return list(missing)


def evaluate_run(run: str | Path, split: str = "test", *, baseline: str | Path | None = None,
                 processed_dir: str | Path | None = None, int8: bool = False, bf16: bool = False) -> dict:
    """Metrics of a run's best checkpoint; with a baseline run, Rel.Impr and DeLong's p-value. `int8`: score
    with the PLM's linear layers in int8 (clickprompt.quantize); `bf16`: score under bf16 autocast; e.g. to
    see what either costs in AUC."""
    import torch

    from clickprompt.batching import predict_probs
    from clickprompt.data.text import TokenCache
    from clickprompt.diagnostics import masked_value_accuracy
    from clickprompt.evaluation import delong_test, rel_impr

    run = RunDir(run)
    ds = run.dataset(processed_dir)
    model, config, tokenizer = run.load_model(ds, int8=int8)
    if config["kind"] == ModelKind.PRETRAIN:
        run_cfg = RunConfig.from_dict(config["run_config"])
        cache = TokenCache.for_dataset(tokenizer, ds, run_cfg.data.max_length)
        return {"run": str(run.path), "split": split,
                **masked_value_accuracy(model, ds.split(split), cache, tokenizer, run_cfg)}
    labels = ds.split(split).labels
    probs = predict_probs(model, config, tokenizer, ds, split, dtype=torch.bfloat16 if bf16 else None)
    out = {"run": str(run.path), "split": split, "kind": config["kind"], "int8": int8, "bf16": bf16,
           **ctr_metrics(labels, probs)}
    if baseline is not None:
        b_model, b_config, b_tok = RunDir(baseline).load_model(ds)
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
    from clickprompt.config import load_stage_config, profile_option
    from clickprompt.formatting import fmt_num, quick_table

    out = Path(out)
    # where the with-PLM finetuning's CTR part starts: the PA-MLM run (the paper), or a click-trained run
    # of this job ("finetune-without-plm" or "ctr"; the profile's `quick: with_plm_ctr_from`)
    ctr_from = profile_option(profile, "quick", "with_plm_ctr_from")
    if ctr_from not in (None, "finetune-without-plm", "ctr"):
        raise ConfigError(f"profile {profile}: quick.with_plm_ctr_from = {ctr_from!r}: expected finetune-without-plm or ctr")
    flags = {"data.dataset": dataset, "plm.name": plm, "train.seed": seed,
             "data.processed_dir": None if processed_dir is None else str(processed_dir)}

    def cfg_for(stage: str) -> RunConfig:
        return load_stage_config(profile, stage, flags={k: v for k, v in flags.items() if v is not None})

    timings, results = {}, {}
    steps = [
        ("ctr", lambda: train_ctr(cfg_for("train-ctr"), out / "ctr", force=force, progress=progress)),
        ("pretrain", lambda: pretrain(cfg_for("pretrain"), out / "pretrain", force=force, progress=progress)),
        ("without-plm", lambda: finetune(cfg_for("finetune-without-plm"), out / "finetune-without-plm",
                                         pretrained=out / "pretrain", with_plm=False, force=force, progress=progress)),
        ("with-plm", lambda: finetune(cfg_for("finetune-with-plm"), out / "finetune-with-plm",
                                      pretrained=out / "pretrain", with_plm=True, force=force, progress=progress,
                                      init_ctr=out / ctr_from if ctr_from else None)),
    ]
    if progress and is_main_process():
        from clickprompt.progress import progress_mode, quiet_library_bars

        quiet_library_bars(progress_mode())  # a log file gets our lines, not transformers' bars
    ctr_model = cfg_for("train-ctr").ctr.model
    what = {  # the stage banners: what each step does, in the paper's terms
        "ctr": f"{ctr_model} from scratch: the baseline every ClickPrompt number is compared with",
        "pretrain": "PA-MLM pretraining (Sec 3.5.1): the CTR model writes soft prompts for every PLM layer and the "
                    "PLM recovers masked tokens of the sample's text through them",
        "without-plm": "finetuning without the PLM (Eq. 10): the pretrained CTR model alone, with a new click head",
        "with-plm": "finetuning with the PLM (Eq. 9): the CTR and PLM logits mixed by a learned alpha" + (
            f"; the CTR model and its head start from {out / ctr_from} (click-trained), the prompt generator and "
            "PLM from PA-MLM" if ctr_from else ""),
    }
    dirs = {"ctr": "ctr", "pretrain": "pretrain", "without-plm": "finetune-without-plm", "with-plm": "finetune-with-plm"}
    for i, (name, step) in enumerate(steps, 1):
        t0 = time.perf_counter()
        was_finished = RunDir(out / dirs[name]).finished and not force
        if progress:
            print(f"\n[quick {i}/{len(steps)}] {what[name]} -> {out / dirs[name]}", flush=True)
        results[name] = step()
        timings[name] = round(time.perf_counter() - t0, 1)
        if progress:
            r = results[name]
            got = (f"valid {r.get('objective', 'PA-MLM')} loss {fmt_num(r.get('valid_mlm_loss', r.get('valid_clm_loss')))}, "
                   f"value-token accuracy own / shuffled / no prompts {fmt_num(r['value_token_acc_true'], 3)} / "
                   f"{fmt_num(r['value_token_acc_shuffled'], 3)} / {fmt_num(r['value_token_acc_none'], 3)}"
                   if name == "pretrain" else f"test AUC {fmt_num(r['test']['auc'])}, log loss {fmt_num(r['test']['logloss'])}")
            how = "reused the finished run (same settings)" if was_finished else f"done in {timings[name]:.0f} s"
            print(f"[quick {i}/{len(steps)}] {how}: {got}", flush=True)
    summary = quick_table(out, results, timings, dataset=dataset, profile=profile,
                          ctr_name=ctr_model, pretrain_cfg=cfg_for("pretrain"))
    if is_main_process():
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
        atomic_write_text(out / "summary.md", summary["table"] + "\n")
    return summary


def control_act(out: str | Path = "runs/quick/control", *, profile: str = "quick",
                processed_dir: str | Path | None = None, plm: str | None = None, seed: int | None = None,
                force: bool = False, progress: bool = True) -> dict:
    """Act 1 of the main job: the positive control (clickprompt.data.control; options in the profile's
    `control` block), where clicks depend on word meanings only the text carries and most test items are
    new. DCNv2 from scratch against ClickPrompt with PLM (no PA-MLM), with the control block's budgets.
    Returns clickprompt.verdicts.act_one's table and verdict."""
    from clickprompt.config import load_stage_config, profile_act
    from clickprompt.data.control import ControlOptions, ensure_control_dataset
    from clickprompt.verdicts import act_one

    out, root = Path(out), Path(processed_dir or "data/processed")
    name = "control-quick" if profile == "quick" else f"control-{profile}"
    ensure_control_dataset(root / name, ControlOptions(**profile_act(profile, "control")))
    flags = {k: v for k, v in {"data.dataset": name, "data.processed_dir": str(root), "plm.name": plm,
                               "train.seed": seed}.items() if v is not None}

    def cfg_for(stage: str) -> RunConfig:
        return load_stage_config(profile, stage, flags=flags, act="control")

    runs = {"DCNv2 from scratch": (out / "ctr", lambda: train_ctr(cfg_for("train-ctr"), out / "ctr", force=force,
                                                                   progress=progress)),
            "ClickPrompt with PLM": (out / "finetune-with-plm", lambda: finetune(
                cfg_for("finetune-with-plm"), out / "finetune-with-plm", pretrained=None, with_plm=True, force=force,
                progress=progress))}
    timings = {}
    for label, (_, step) in runs.items():
        if progress:
            print(f"[quick] act 1, positive control: {label} ...", flush=True)
        t0 = time.perf_counter()
        step()
        timings[label] = round(time.perf_counter() - t0, 1)
    return act_one(root / name, {label: run_dir for label, (run_dir, _) in runs.items()}, timings)


def main_job(dataset: str = "ml-100k", out: str | Path = "runs/quick", *, profile: str = "quick",
             processed_dir: str | Path | None = None, plm: str | None = None, seed: int | None = None,
             force: bool = False, progress: bool = True, control: bool = True) -> dict:
    """`clickprompt quick`: act 1, the positive control (control_act, runs in <out>/control), then act 2, the
    four stages on `dataset` (quick, runs in <out>); <out>/summary.md holds both tables and verdicts."""
    from clickprompt.verdicts import act_two, budget_of

    out = Path(out)
    act1 = control_act(out / "control", profile=profile, processed_dir=processed_dir, plm=plm, seed=seed,
                       force=force, progress=progress) if control else None
    act2 = quick(dataset, out, profile=profile, processed_dir=processed_dir, plm=plm, seed=seed, force=force,
                 progress=progress)
    ds = RunDir(out / "ctr").dataset()  # act 2's data, read once (every run of the act was trained on it)
    budgets = {}
    for row, name in zip(act2["rows"], ("ctr", "finetune-without-plm", "finetune-with-plm")):
        run = RunDir(out / name)
        budgets[row["model"]] = budget_of(run.read_results(), run.read_config()["train"]["batch_size"],
                                          len(ds.split("train")))
    verdict2 = act_two(act2, budgets, (ds.stats.get("oov_rate") or {}).get("test"))
    parts = ["# The main job: where the text decides, and where it does not", ""]
    if act1 is not None:
        parts += ["## Act 1: the positive control", "", act1["verdict"], "", act1["table"], ""]
    parts += ["## Act 2: " + dataset, "", verdict2, "", act2["table"]]
    text = "\n".join(parts)
    summary = {"act1": act1, "act2": {**act2, "verdict": verdict2, "budgets": budgets}, "table": text}
    if is_main_process():
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
        atomic_write_text(out / "summary.md", text + "\n")
    return summary
