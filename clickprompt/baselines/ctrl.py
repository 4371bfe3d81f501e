"""CTRL (Li et al., 2023, "CTRL: Connect Collaborative and Language Model for CTR Prediction"; ref. [28] of
the paper, Table 2), as App. B.2 runs it: AutoInt as the CTR model (App. B.1's configuration) and a PLM
(TinyBERT in the paper); contrastive pretraining for 20 epochs, then AutoInt alone finetuned on clicks.

    stage ctrl-pretrain   CLIP-style alignment of the two modalities of one sample:
                              z_i = normalize(W_c q_i),   q_i = FI_Layer(Embed_Layer(x_i^ID))   (Eq. 5)
                              t_i = normalize(W_t Pool(PLM(x_i^text)))
                              s_ij = exp(tau) * <z_i, t_j>         tau learnable (init log 1/0.07, capped at log 100)
                              L = (CE(s, I) + CE(s^T, I)) / 2      InfoNCE over the batch, both directions
    stage ctrl-finetune   the CTR model alone, y = sigma(head(q)), its embeddings and interaction layers
                          taken from ctrl-pretrain, a fresh head; the checkpoint is a plain CTR checkpoint
                          (kind "ctr"), so inference costs what AutoInt costs (Table 8), like ClickPrompt
                          w/o PLM (Eq. 10)

Negatives are the other samples of the (micro-)batch a process sees: with train.grad_accum > 1, or under
DDP, each forward pass contrasts its own part of the batch (CLIP gathers across processes; we do not).
Learning rates: train.lr for the CTR model, the projections and tau; train.plm_lr for the PLM (0 freezes
it). The rest of CTRL's training configuration ("the same as reported in CTRL's original paper") is the
`paper` profile's ctrl-pretrain block. Projection size PROJ_DIM = 128.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clickprompt.baselines import common
from clickprompt.baselines.registry import Method, register_method
from clickprompt.config import ConfigError, RunConfig
from clickprompt.ctr import create_ctr
from clickprompt.data.schema import FeatureSpec
from clickprompt.errors import CheckpointError
from clickprompt.model import PretrainedMixin
from clickprompt.rundir import ModelKind, RunDir, Stage

PROJ_DIM = 128
TAU_INIT = math.log(1 / 0.07)  # CLIP's initial temperature 0.07
TAU_MAX = math.log(100.0)  # CLIP caps the scale at 100
DIAGNOSTIC_ROWS = 2048


def info_nce(z_ctr: torch.Tensor, z_text: torch.Tensor, log_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, similarities (B, B)): symmetric InfoNCE of L2-normalised pairs, row i of each side a positive
    pair, every other row of the batch a negative."""
    sim = log_scale.clamp(max=TAU_MAX).exp() * z_ctr @ z_text.T  # (B, B)
    target = torch.arange(sim.shape[0], device=sim.device)
    loss = (F.cross_entropy(sim.float(), target) + F.cross_entropy(sim.T.float(), target)) / 2
    return loss, sim


class CTRLForPretraining(PretrainedMixin, nn.Module):
    kind = ModelKind.CTRL_PRETRAIN

    def __init__(self, ctr, plm, pooling: str = "auto", proj_dim: int = PROJ_DIM):
        super().__init__()
        self.ctr = ctr  # its head is not trained here (the finetuning starts a fresh one)
        self.plm = plm  # PLMWithPrompts over the bare encoder
        self.pooling = plm.resolve_pooling(pooling)
        self.ctr_proj = nn.Linear(ctr.output_dim, proj_dim)  # W_c
        self.text_proj = nn.Linear(plm.hidden_size, proj_dim)  # W_t
        self.log_scale = nn.Parameter(torch.tensor(TAU_INIT))  # tau

    @classmethod
    def from_config(cls, config: dict) -> "CTRLForPretraining":
        run_cfg = RunConfig.from_dict(config["run_config"])
        ctr = create_ctr(run_cfg.ctr.model, FeatureSpec.from_dict(config["spec"]), run_cfg.ctr)
        return cls(ctr, common.encoder_from_config(config["hf_config"]), pooling=run_cfg.plm.pooling)

    def embed(self, ids, input_ids, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_ctr, z_text), each (B, PROJ_DIM) and of unit norm."""
        q = self.ctr.represent(ids)  # Eq. 5, (B, d_q)
        pooled = self.plm.pool(self.plm.encode(input_ids, attention_mask), attention_mask, self.pooling)  # (B, H)
        return F.normalize(self.ctr_proj(q), dim=-1), F.normalize(self.text_proj(pooled), dim=-1)

    def forward(self, ids, input_ids, attention_mask, **_) -> dict:
        z_ctr, z_text = self.embed(ids, input_ids, attention_mask)
        loss, sim = info_nce(z_ctr, z_text, self.log_scale)
        return {"loss": loss, "similarity": sim}


# ---------------------------------------------------------------- stages


def contrastive_evaluator(make_batch, rows: np.ndarray, batch_size: int, precision: str):
    """Mean InfoNCE loss and top-1 retrieval accuracy (CTR -> text) over fixed rows, in chunks of the
    training micro-batch size (the loss depends on how many negatives a batch holds)."""
    from clickprompt.training import autocast, autocast_dtype, to_device

    @torch.no_grad()
    def evaluate(model) -> dict:
        device = next(model.parameters()).device
        dtype = autocast_dtype(precision, device)
        was_training = model.training
        model.eval()
        total, hits, n = 0.0, 0, 0
        for s in range(0, len(rows) - batch_size + 1 if len(rows) >= batch_size else 1, batch_size):
            idx = rows[s : s + batch_size]
            with autocast(device, dtype):
                out = model(**to_device(make_batch(idx), device))
            total += float(out["loss"]) * len(idx)
            hits += int((out["similarity"].argmax(dim=1).cpu() == torch.arange(len(idx))).sum())
            n += len(idx)
        model.train(was_training)
        return {"valid_infonce_loss": total / max(n, 1), "valid_retrieval_acc": hits / max(n, 1),
                "in_batch_negatives": min(batch_size, len(rows)) - 1}

    return evaluate


def pretrain_ctrl(cfg: RunConfig, run_dir, *, pretrained=None, resume: bool = False, force: bool = False,
                  progress: bool = True) -> dict:
    """Contrastive alignment of the CTR model and the PLM; the lowest validation InfoNCE loss is kept."""
    from clickprompt.batching import text_batcher
    from clickprompt.data.text import TokenCache
    from clickprompt.pipeline import training_cache
    from clickprompt.training import plm_param_groups, seed_everything, train

    if pretrained:
        raise ConfigError("ctrl-pretrain starts from scratch and the published PLM; it takes no --pretrained run")
    common.validate_stage(cfg, Stage.CTRL_PRETRAIN)
    t = cfg.train
    if not (isinstance(t.plm_lr, (int, float)) and math.isfinite(t.plm_lr) and t.plm_lr >= 0):
        raise ConfigError(f"train.plm_lr = {t.plm_lr!r}: must be a finite number >= 0 (0 freezes the PLM)")
    common.check_plm_family(cfg, "CTRL")
    ds = common.load_dataset(cfg)
    with RunDir(run_dir).open(Stage.CTRL_PRETRAIN, common.run_settings(cfg, ds), force=force, resume=resume) as session:
        if session.reused is not None:
            return session.reused
        seed_everything(cfg.train.seed)
        plm, tokenizer, _ = common.load_encoder(cfg.plm.name)
        model = CTRLForPretraining(create_ctr(cfg.ctr.model, ds.spec, cfg.ctr), plm, pooling=cfg.plm.pooling)
        cache = training_cache(TokenCache.for_dataset(tokenizer, ds, cfg.data.max_length, cfg.data.pad_to_multiple), cfg)
        tok_dir = common.save_tokenizer(session, tokenizer)
        model.config = common.text_checkpoint_config(ModelKind.CTRL_PRETRAIN, ds, cfg, session, plm.config.to_dict(), tok_dir)
        train_split, valid = ds.split("train"), ds.split("valid")
        micro = max(1, t.batch_size // t.grad_accum)
        evaluate = contrastive_evaluator(text_batcher(valid, cache), np.arange(min(len(valid), DIAGNOSTIC_ROWS)),
                                         micro, t.precision)
        t0 = time.perf_counter()
        result = train(
            model, text_batcher(train_split, cache), len(train_split), cfg.train, session.run, evaluate=evaluate,
            monitor="valid_infonce_loss", mode="min", param_groups=plm_param_groups(model, plm, t.lr, t.plm_lr),
            schedule="linear", resume=session.resume, progress=progress, checkpoint_config=model.config,
            early_stopping=False,
        )
        best = next((h for h in result.history if h["epoch"] == result.best_epoch), {})
        return session.finish({
            "dataset": ds.name, "data_fingerprint": ds.fingerprint, "seed": cfg.train.seed, "method": "ctrl",
            "objective": "InfoNCE (CTR model vs PLM, both directions)", "plm": cfg.plm.name, "ctr": cfg.ctr.model,
            "epochs_run": result.epochs_run, "steps": result.steps, "best_epoch": result.best_epoch,
            "valid_infonce_loss": result.best_metric, "valid_retrieval_acc": best.get("valid_retrieval_acc"),
            "in_batch_negatives": best.get("in_batch_negatives"), "temperature": float(1 / model.log_scale.detach().exp()),
            "train_samples_per_s": round(result.samples_per_s, 1), "wall_s": round(time.perf_counter() - t0, 1),
        })


def finetune_ctrl(cfg: RunConfig, run_dir, *, pretrained=None, resume: bool = False, force: bool = False,
                  progress: bool = True) -> dict:
    """The CTR model alone from the ctrl-pretrain run (its embeddings and interaction layers; a fresh head)."""
    from clickprompt.batching import ctr_batcher
    from clickprompt.checkpoint import load_checkpoint
    from clickprompt.model import CTRClassifier, checkpoint_config
    from clickprompt.pipeline import evaluator, finish_run
    from clickprompt.rundir import settings_sha256
    from clickprompt.training import seed_everything, train

    cfg, ds, pre, pre_config, extra = common.begin_second_stage(cfg, Stage.CTRL_FINETUNE, ModelKind.CTRL_PRETRAIN, pretrained)  # ctr.*, plm.name
    with RunDir(run_dir).open(Stage.CTRL_FINETUNE, common.run_settings(cfg, ds, **extra), force=force,
                              resume=resume) as session:
        if session.reused is not None:
            return session.reused
        seed_everything(cfg.train.seed)
        model = CTRClassifier(create_ctr(cfg.ctr.model, ds.spec, cfg.ctr))
        state = {k: v for k, v in load_checkpoint(pre.checkpoint())[1].items()
                 if k.startswith("ctr.") and not k.startswith("ctr.head.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("ctr.head.")]:
            raise CheckpointError(f"{pretrained}: CTR weights do not fit ({missing[:3]}, {unexpected[:3]})")
        model.config = checkpoint_config(ModelKind.CTR, ds, cfg, settings_sha256(session.settings))
        valid = ds.split("valid")
        result = train(
            model, ctr_batcher(ds.split("train")), len(ds.split("train")), cfg.train, session.run,
            evaluate=evaluator(ctr_batcher(valid), valid, cfg), checkpoint_config=model.config,
            resume=session.resume, progress=progress,
        )
        return finish_run(session, model, ctr_batcher, ds, cfg, result,
                          {"model": "CTRL", "method": "ctrl", "ctr": cfg.ctr.model, "plm": cfg.plm.name,
                           "pretrained": str(pretrained)})


register_method(Method(
    "ctrl", "CTRL", "InfoNCE pretraining of the CTR model (AutoInt) against the PLM's text vectors, then the CTR model alone",
    stages={Stage.CTRL_PRETRAIN: pretrain_ctrl, Stage.CTRL_FINETUNE: finetune_ctrl},
))
