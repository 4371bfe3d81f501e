"""PTab (Liu et al., 2022; ref. [39] of the paper, Table 2), as App. B.2 runs it: "further pretrains the
BERT model with the classical masked language modeling objective based on the textualized CTR data, and
then finetunes BERT for downstream CTR prediction as a text classification problem".

    stage ptab-pretrain   MLM on the training split's Eq. 4 text: 10 epochs, batch 1024, lr 5e-5, linear
                          decay, warmup 0.05 (the `paper` profile)
    stage ptab-finetune   y = sigma(MLP(Pool(PLM(x_text)))) with a fresh head: 10 epochs, batch 1024,
                          lr 5e-5, linear decay, warmup 0.01

PTab's pretraining IS PA-MLM (Sec 3.5.1) without prompts, and the code says so: PTabForPretraining is
ClickPromptForPretraining (same MLM head and loss, PLMWithPrompts.mlm_loss at masked positions only)
over a `TextCore`, a core with ClickPromptModel's call signature whose PLM reads the text alone (no CTR
model, no prompt generator); its batches are PA-MLM's (batching.pretraining_batcher: 15% of the text
tokens, 80/10/10, hashed per sample and epoch), and its evaluation is PA-MLM's LM loss on fixed masks
(diagnostics.lm_loss) and masked value-token accuracy (diagnostics.masked_value_accuracy, where the
"true", "shuffled" and "none" prompt modes coincide: there are no prompts). The finetuning keeps the
pretrained encoder, drops the MLM head and adds the classification head of Eq. 8.
"""

from __future__ import annotations

import time

import numpy as np
import torch.nn.functional as F
from torch import nn

from clickprompt.baselines import common
from clickprompt.baselines.registry import Method, register_method
from clickprompt.config import RunConfig
from clickprompt.model import ClickPromptForPretraining, PretrainedMixin
from clickprompt.rundir import ModelKind, RunDir, Stage

DIAGNOSTIC_ROWS = 1024  # fixed validation / training rows of the per-epoch MLM loss (as PA-MLM's)


class TextCore(nn.Module):
    """ClickPromptModel without its CTR model and prompt generator: the PLM reads the text alone.

    Same call as ClickPromptModel (ids and prompt_mode are accepted and ignored), so the PA-MLM head,
    loss and diagnostics run on it unchanged."""

    ctr = None
    generator = None

    def __init__(self, plm):
        super().__init__()
        self.plm = plm

    def forward(self, ids, input_ids, attention_mask, prompt_mode: str = "none", output_attentions: bool = False,
                target_ids=None):
        kwargs = {"target_ids": target_ids} if target_ids is not None else {}
        out = self.plm.encode(input_ids, attention_mask, output_attentions=output_attentions, **kwargs)
        return (None, *out) if output_attentions else (None, out)  # (q: none, hidden (B, Z, H)[, attentions])


class PTabForPretraining(ClickPromptForPretraining):
    """PTab's further pretraining = PA-MLM without prompts (module docstring)."""

    kind = ModelKind.PTAB_PRETRAIN

    def __init__(self, plm):
        super().__init__(TextCore(plm))

    @classmethod
    def from_config(cls, config: dict) -> "PTabForPretraining":
        return cls(common.encoder_from_config(config["hf_config"], mlm_head=True))


class PTabForCTR(PretrainedMixin, nn.Module):
    """PTab's finetuning: CTR as text classification, y = sigma(MLP(Pool(PLM(x_text)))) (Eq. 8's head)."""

    kind = ModelKind.PTAB_CTR

    def __init__(self, plm, pooling: str = "auto", dropout: float | None = None):
        super().__init__()
        self.plm = plm  # PLMWithPrompts over the bare encoder
        self.pooling = plm.resolve_pooling(pooling)
        H = plm.hidden_size
        self.head = common.ClassificationHead(H, H, plm.hidden_dropout if dropout is None else dropout)

    @classmethod
    def from_config(cls, config: dict) -> "PTabForCTR":
        run_cfg = RunConfig.from_dict(config["run_config"])
        return cls(common.encoder_from_config(config["hf_config"]), pooling=run_cfg.plm.pooling)

    def forward(self, input_ids, attention_mask, labels=None, **_) -> dict:
        hidden = self.plm.encode(input_ids, attention_mask)  # (B, Z, H)
        logits = self.head(self.plm.pool(hidden, attention_mask, self.pooling)).squeeze(-1)  # (B,)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.binary_cross_entropy_with_logits(logits.float(), labels.float())  # Eq. 2
        return out


# ---------------------------------------------------------------- stages


def pretrain_ptab(cfg: RunConfig, run_dir, *, pretrained=None, resume: bool = False, force: bool = False,
                  progress: bool = True) -> dict:
    """MLM on the training split's text, PA-MLM's code without prompts; the lowest validation MLM loss is kept."""
    from clickprompt.batching import pretraining_batcher
    from clickprompt.data.text import TokenCache
    from clickprompt.pipeline import training_cache
    from clickprompt.diagnostics import lm_loss, masked_value_accuracy
    from clickprompt.training import seed_everything, train

    ds = common.begin_first_stage(cfg, Stage.PTAB_PRETRAIN, "PTab", pretrained)
    with RunDir(run_dir).open(Stage.PTAB_PRETRAIN, common.run_settings(cfg, ds), force=force, resume=resume) as session:
        if session.reused is not None:
            return session.reused
        seed_everything(cfg.train.seed)
        plm, tokenizer, info = common.load_encoder(cfg.plm.name, mlm_head=True)
        model = PTabForPretraining(plm)
        cache = training_cache(TokenCache.for_dataset(tokenizer, ds, cfg.data.max_length, cfg.data.pad_to_multiple), cfg)
        if session.main:
            session.run.write_config({**session.settings, "plm_newly_initialized": list(info.newly_initialized)})
        tok_dir = common.save_tokenizer(session, tokenizer)
        train_split, valid = ds.split("train"), ds.split("valid")
        fixed_train = pretraining_batcher(train_split, cache, tokenizer, "mlm", seed=0)  # fixed masks: epochs compare
        fixed_valid = pretraining_batcher(valid, cache, tokenizer, "mlm", seed=0)
        valid_rows = np.arange(min(len(valid), DIAGNOSTIC_ROWS))
        train_rows = np.random.default_rng(0).permutation(len(train_split))[:DIAGNOSTIC_ROWS]

        def evaluate(m) -> dict:  # PA-MLM's LM losses (diagnostics.pretraining_evaluator without prompt modes)
            v = lm_loss(m, fixed_valid, valid_rows, cfg.train.precision)
            t = lm_loss(m, fixed_train, train_rows, cfg.train.precision)
            return {"valid_mlm_loss": v, "train_eval_mlm_loss": t, "generalisation_gap": v - t}

        model.config = common.text_checkpoint_config(ModelKind.PTAB_PRETRAIN, ds, cfg, session, plm.config.to_dict(), tok_dir)
        t0 = time.perf_counter()
        result = train(
            model, pretraining_batcher(train_split, cache, tokenizer, "mlm", seed=cfg.train.seed), len(train_split),
            cfg.train, session.run, evaluate=evaluate, monitor="valid_mlm_loss", mode="min", schedule="linear",
            resume=session.resume, progress=progress, checkpoint_config=model.config, early_stopping=False,
        )
        wall = time.perf_counter() - t0
        acc = masked_value_accuracy(model, valid, cache, tokenizer, cfg, n=DIAGNOSTIC_ROWS)
        best = next((h for h in result.history if h["epoch"] == result.best_epoch), {})
        return session.finish({
            "dataset": ds.name, "data_fingerprint": ds.fingerprint, "seed": cfg.train.seed, "method": "ptab",
            "objective": "MLM (PA-MLM without prompts)", "plm": cfg.plm.name, "epochs_run": result.epochs_run,
            "steps": result.steps, "best_epoch": result.best_epoch, "valid_mlm_loss": result.best_metric,
            "train_eval_mlm_loss": best.get("train_eval_mlm_loss"), "generalisation_gap": best.get("generalisation_gap"),
            "value_token_acc": acc["value_token_acc_none"], "masked_value_tokens": acc["masked_value_tokens"],
            "train_samples_per_s": round(result.samples_per_s, 1), "wall_s": round(wall, 1),
            "plm_newly_initialized": list(info.newly_initialized),
        })


def finetune_ptab(cfg: RunConfig, run_dir, *, pretrained=None, resume: bool = False, force: bool = False,
                  progress: bool = True) -> dict:
    """Text classification from the ptab-pretrain run: its encoder, a fresh head (the MLM head is dropped)."""
    from clickprompt.batching import text_batcher
    from clickprompt.data.text import TokenCache
    from clickprompt.pipeline import training_cache
    from clickprompt.pipeline import evaluator, finish_run
    from clickprompt.training import seed_everything, train

    cfg, ds, pre, pre_config, extra = common.begin_second_stage(cfg, Stage.PTAB_FINETUNE, ModelKind.PTAB_PRETRAIN, pretrained)  # plm.name
    with RunDir(run_dir).open(Stage.PTAB_FINETUNE, common.run_settings(cfg, ds, **extra), force=force,
                              resume=resume) as session:
        if session.reused is not None:
            return session.reused
        seed_everything(cfg.train.seed)
        mlm = PTabForPretraining.from_pretrained(pre.checkpoint(), ds)
        plm = common.encoder_from_config(pre_config["hf_config"])
        plm.model.load_state_dict(mlm.core.plm.encoder.state_dict())  # the encoder; the MLM head stays behind
        model = PTabForCTR(plm, pooling=cfg.plm.pooling)
        tokenizer = common.run_tokenizer(pre, cfg.plm.name)
        cache = training_cache(TokenCache.for_dataset(tokenizer, ds, cfg.data.max_length, cfg.data.pad_to_multiple), cfg)
        tok_dir = common.save_tokenizer(session, tokenizer)
        model.config = common.text_checkpoint_config(ModelKind.PTAB_CTR, ds, cfg, session, pre_config["hf_config"], tok_dir)

        def make_batch(split):
            return text_batcher(split, cache)

        valid = ds.split("valid")
        result = train(
            model, make_batch(ds.split("train")), len(ds.split("train")), cfg.train, session.run,
            evaluate=evaluator(make_batch(valid), valid, cfg), schedule="linear",
            checkpoint_config=model.config, resume=session.resume, progress=progress,
        )
        return finish_run(session, model, make_batch, ds, cfg, result,
                          {"model": "PTab", "method": "ptab", "plm": cfg.plm.name, "pretrained": str(pretrained)})


register_method(Method(
    "ptab", "PTab", "MLM on the textualised data (PA-MLM without prompts), then text classification",
    stages={Stage.PTAB_PRETRAIN: pretrain_ptab, Stage.PTAB_FINETUNE: finetune_ptab},
))
