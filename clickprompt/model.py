"""ClickPrompt itself: one backbone (CTR model -> prompt generator -> PLM) with thin heads.

    CTRClassifier              a CTR model alone: from scratch (baselines) or w/o PLM (Eq. 10)
    ClickPromptModel           the core: CTR model + prompt generator (Eq. 6) + PLM with prefixes (Eq. 7)
    ClickPromptForPretraining  PA-MLM head (Sec 3.5.1); PA-CLM for decoder-only PLMs (App. C.3)
    ClickPromptForCTR          finetuning with PLM: alpha-weighted CTR and PLM logits (Eq. 9)

Every head returns a dict with "logits" and, when labels are given, "loss".
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from clickprompt.checkpoint import check_fingerprint, load_checkpoint, load_state_into, read_checkpoint_config, save_checkpoint
from clickprompt.config import PromptConfig, RunConfig
from clickprompt.ctr import create_ctr
from clickprompt.ctr.base import CTRModel
from clickprompt.data.schema import FeatureSpec
from clickprompt.errors import CheckpointError
from clickprompt.plm.prefix import PLMWithPrompts
from clickprompt.prompting import PromptGenerator
from clickprompt.rundir import ModelKind


class PretrainedMixin:
    """`save_pretrained(dir)` / `from_pretrained(dir)` in the Hugging Face manner: a checkpoint is
    config.json (what the weights are: kind, feature spec, settings, the PLM's config, data fingerprint)
    + model.safetensors + manifest.json (clickprompt.checkpoint), and loading verifies the manifest.

    `config` is the checkpoint config; the stage that builds a model sets it (`checkpoint_config`)."""

    kind: ClassVar[ModelKind]
    config: dict

    def save_pretrained(self, directory: str | Path) -> Path:
        return save_checkpoint(directory, self.state_dict(), {**self.config, "kind": str(self.kind)})

    @classmethod
    def from_config(cls, config: dict):  # pragma: no cover - every head implements it
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, directory: str | Path, dataset=None):
        """The model saved in `directory`, in eval mode; with a PreparedDataset, refused unless the
        checkpoint was trained on the same id space (fingerprint)."""
        config, state = load_checkpoint(directory)
        if config.get("kind") != cls.kind:
            raise CheckpointError(f"{directory}: holds a {config.get('kind')!r} checkpoint, not {str(cls.kind)!r}")
        if dataset is not None:
            check_fingerprint(config, dataset.fingerprint, directory)
        model = cls.from_config(config)
        load_state_into(model, state, directory)
        model.config = config
        return model.eval()


def checkpoint_config(kind: ModelKind, dataset, cfg: RunConfig, settings_sha256: str, **extra) -> dict:
    """What a checkpoint records about its weights (best/config.json)."""
    return {
        "kind": str(kind),
        "dataset": dataset.name,
        "data_fingerprint": dataset.fingerprint,
        "spec": dataset.spec.to_dict(),
        "run_config": cfg.to_dict(),
        "settings_sha256": settings_sha256,
        "clickprompt_version": __import__("clickprompt").__version__,
        **extra,
    }


def build_clickprompt(cfg: RunConfig, spec: FeatureSpec, *, plm_weights: bool = True, hf_config: dict | None = None):
    """(core, tokenizer, plm_info): a fresh CTR model, prompt generator and the named PLM (its pretrained
    weights, or a PLM of the same shape built from `hf_config` when weights come from a checkpoint)."""
    from clickprompt.plm import load_plm, resolve_plm, wrap_plm
    from clickprompt.plm.backbone import build_plm_from_config

    if plm_weights:
        mlm_model, tokenizer, info = load_plm(cfg.plm.name)
    else:
        from transformers import AutoConfig, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(resolve_plm(cfg.plm.name), local_files_only=True)
        mlm_model, tokenizer, info = build_plm_from_config(AutoConfig.for_model(**hf_config), tokenizer)
    ctr = create_ctr(cfg.ctr.model, spec, cfg.ctr)
    return ClickPromptModel(ctr, wrap_plm(mlm_model), cfg.prompt), tokenizer, info


def _core_from_config(config: dict) -> "ClickPromptModel":
    run_cfg = RunConfig.from_dict(config["run_config"])
    core, _, _ = build_clickprompt(run_cfg, FeatureSpec.from_dict(config["spec"]), plm_weights=False,
                                   hf_config=config["hf_config"])
    return core


class CTRClassifier(PretrainedMixin, nn.Module):
    """y = sigma(MLP(q)) (Eq. 10 / Sec 2.1): the CTR model with the BCE loss of Eq. 2.

    Its state dict is the bare CTR model's under the prefix `ctr.`, so a ClickPrompt w/o PLM
    checkpoint loads into the plain CTR model and the inference graph is exactly the backbone's."""

    kind = ModelKind.CTR

    def __init__(self, ctr: CTRModel):
        super().__init__()
        self.ctr = ctr

    @classmethod
    def from_config(cls, config: dict) -> "CTRClassifier":
        run_cfg = RunConfig.from_dict(config["run_config"])
        return cls(create_ctr(run_cfg.ctr.model, FeatureSpec.from_dict(config["spec"]), run_cfg.ctr))

    def forward(self, ids: torch.Tensor, labels: torch.Tensor | None = None, **_) -> dict:
        logits = self.ctr(ids)  # (B,)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.binary_cross_entropy_with_logits(logits.float(), labels.float())  # Eq. 2
        return out


class ClickPromptModel(nn.Module):
    """CTR model -> q (Eq. 5) -> prompt generator (Eq. 6) -> PLM with prompts (Eq. 7).

    `prompt.use_prompts = False` removes the prompt interface (the "w/o Prompt" ablation of
    Table 5): the PLM then reads the text alone and the two towers meet only in the output."""

    def __init__(self, ctr: CTRModel, plm: PLMWithPrompts, prompt: PromptConfig):
        super().__init__()
        self.ctr = ctr
        self.plm = plm
        self.prompt_cfg = prompt
        self.generator = (
            PromptGenerator.for_plm(ctr.output_dim, plm, prompt.num_prompts, prompt.strategy) if prompt.use_prompts else None
        )

    def forward(
        self,
        ids: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_mode: str = "true",
        output_attentions: bool = False,
        target_ids: torch.Tensor | None = None,
    ):
        """-> (q (B, d_q), hidden (B, Z, H)[, attentions]). prompt_mode: "true", "shuffled" (prompts of
        other samples in the batch: a control) or "none" (no prompts). target_ids: the uncorrupted text,
        read by an encoder-decoder PLM's decoder (BART); ignored by the other families."""
        q = self.ctr.represent(ids)  # Eq. 5: q_i = FI_Layer(Embed_Layer(x_i^ID)), (B, d_q)
        kwargs = {}
        if self.generator is not None and prompt_mode != "none":
            q_for_prompts = q[torch.roll(torch.arange(len(q), device=q.device), 1)] if prompt_mode == "shuffled" else q
            p = self.generator(q_for_prompts)  # Eq. 6: p_{i,l,k} = g_{l,k}(q_i)
            kwargs = {"prefix_kv": p} if self.prompt_cfg.strategy == "layerwise" else {"prompt_embeds": p}
        if target_ids is not None:
            kwargs["target_ids"] = target_ids
        # A frozen PLM that no prompt reaches (w/o Prompt, prompt_mode "none") needs no graph: nothing
        # upstream of its output can receive a gradient, so no activations are kept for a backward pass.
        frozen = "prefix_kv" not in kwargs and "prompt_embeds" not in kwargs and not any(
            p.requires_grad for p in self.plm.parameters())
        with torch.no_grad() if frozen else contextlib.nullcontext():
            out = self.plm.encode(input_ids, attention_mask, output_attentions=output_attentions, **kwargs)  # Eq. 7
        if output_attentions:
            hidden, attentions = out
            return q, hidden, attentions
        return q, out


class ClickPromptForPretraining(PretrainedMixin, nn.Module):
    """PA-MLM (Sec 3.5.1): recover masked text tokens from the text context and the soft prompts
    generated from the intact ID features. The vocabulary projection runs at masked positions only.

    The objective follows the PLM family (`core.plm.objective`): with `mlm_labels` (BERT, RoBERTa, BART)
    the masked-token loss; for BART the encoder reads the masked text and the decoder the original one
    (rebuilt here from the labels), see clickprompt.plm.prefix_seq2seq. With `clm_labels` (GPT-2) PA-CLM
    (App. C.3): the next-token loss over the unmasked text, prompts as layer-wise prefixes."""

    kind = ModelKind.PRETRAIN

    def __init__(self, core: ClickPromptModel):
        super().__init__()
        self.core = core

    @classmethod
    def from_config(cls, config: dict) -> "ClickPromptForPretraining":
        return cls(_core_from_config(config))

    def forward(self, ids, input_ids, attention_mask, mlm_labels=None, clm_labels=None, prompt_mode: str = "true",
                **_) -> dict:
        target_ids = None
        if mlm_labels is not None and self.core.plm.is_encoder_decoder:
            target_ids = torch.where(mlm_labels.ne(-100), mlm_labels, input_ids)  # the uncorrupted text, (B, Z)
        _, hidden = self.core(ids, input_ids, attention_mask, prompt_mode=prompt_mode, target_ids=target_ids)
        out = {"hidden": hidden}
        if mlm_labels is not None:
            out["loss"] = self.core.plm.mlm_loss(hidden, mlm_labels)  # softmax + cross-entropy over masked tokens
        elif clm_labels is not None:
            out["loss"] = self.core.plm.clm_loss(hidden, clm_labels)  # next-token cross-entropy (PA-CLM)
        return out


class ClickPromptForCTR(PretrainedMixin, nn.Module):
    """Finetuning with PLM (Sec 3.5.2, Eq. 9):
        y_CTR = MLP(q),  y_PLM = MLP(Pooling(h_{L+1})),  y = sigma(alpha * y_CTR + (1 - alpha) * y_PLM)
    with alpha a learnable scalar (initialised at 0.5).

    pooling "auto" takes the PLM family's default (clickprompt.plm.prefix): [CLS]/<s> for BERT/RoBERTa,
    the last real token for GPT-2 (the only state that has read the whole text) and for BART (the
    decoder state at the final </s>). dropout: the head's dropout, by default the PLM's own hidden
    dropout (0.1 for BERT/RoBERTa/GPT-2/BART checkpoints), as transformers' classification heads do."""

    kind = ModelKind.CLICKPROMPT_CTR

    def __init__(self, core: ClickPromptModel, pooling: str = "auto", dropout: float | None = None):
        super().__init__()
        self.core = core
        self.pooling = core.plm.resolve_pooling(pooling)
        dropout = core.plm.hidden_dropout if dropout is None else dropout
        H = core.plm.hidden_size
        self.plm_head = nn.Sequential(nn.Linear(H, H), nn.Tanh(), nn.Dropout(dropout), nn.Linear(H, 1))  # Eq. 8
        self.alpha = nn.Parameter(torch.tensor(0.5))

    @classmethod
    def from_config(cls, config: dict) -> "ClickPromptForCTR":
        return cls(_core_from_config(config), pooling=RunConfig.from_dict(config["run_config"]).plm.pooling)

    def forward(self, ids, input_ids, attention_mask, labels=None, prompt_mode: str = "true", **_) -> dict:
        q, hidden = self.core(ids, input_ids, attention_mask, prompt_mode=prompt_mode)
        logit_ctr = self.core.ctr.head(q).squeeze(-1)  # y_CTR, (B,)
        pooled = self.core.plm.pool(hidden, attention_mask, self.pooling)  # (B, H)
        logit_plm = self.plm_head(pooled).squeeze(-1)  # y_PLM, (B,)
        logits = self.alpha * logit_ctr + (1 - self.alpha) * logit_plm  # Eq. 9, before the sigmoid
        out = {"logits": logits, "logit_ctr": logit_ctr, "logit_plm": logit_plm}
        if labels is not None:
            out["loss"] = F.binary_cross_entropy_with_logits(logits.float(), labels.float())  # Eq. 2
        return out


MODEL_CLASSES: dict[ModelKind, type[PretrainedMixin]] = {
    ModelKind.CTR: CTRClassifier, ModelKind.PRETRAIN: ClickPromptForPretraining,
    ModelKind.CLICKPROMPT_CTR: ClickPromptForCTR,
}


def load_pretrained(directory: str | Path, dataset=None, *, int8: bool = False):
    """Any checkpoint (a run's best/ or the run directory): (model in eval mode, its config, tokenizer or
    None for a CTR model). The tokenizer is the one the run saved beside its checkpoint. `int8`: the PLM's
    linear layers quantised to int8 for CPU inference (clickprompt.quantize; a model without a PLM as is)."""
    from clickprompt.checkpoint import checkpoint_dir

    import clickprompt.baselines  # noqa: F401  (adds the PLM baselines' checkpoint kinds to MODEL_CLASSES)

    directory = checkpoint_dir(directory)
    kind = read_checkpoint_config(directory).get("kind")
    try:
        cls = MODEL_CLASSES[ModelKind(kind)]
    except ValueError:
        raise CheckpointError(f"{directory}: unknown checkpoint kind {kind!r}") from None
    model = cls.from_pretrained(directory, dataset)
    tokenizer = None
    if cls.kind.reads_text:
        from transformers import AutoTokenizer

        from clickprompt.plm import resolve_plm

        saved = directory.parent / model.config.get("tokenizer", "tokenizer")
        source = saved if saved.is_dir() else resolve_plm(RunConfig.from_dict(model.config["run_config"]).plm.name)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    if int8:
        from clickprompt.quantize import quantize_plm

        config = model.config
        model = quantize_plm(model)
        model.config = config
    return model, model.config, tokenizer
