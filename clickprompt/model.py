"""ClickPrompt itself: one backbone (CTR model -> prompt generator -> PLM) with thin heads.

    CTRClassifier              a CTR model alone: from scratch (baselines) or w/o PLM (Eq. 10)
    ClickPromptModel           the core: CTR model + prompt generator (Eq. 6) + PLM with prefixes (Eq. 7)
    ClickPromptForPretraining  PA-MLM head (Sec 3.5.1); PA-CLM for decoder-only PLMs (App. C.3)
    ClickPromptForCTR          finetuning with PLM: alpha-weighted CTR and PLM logits (Eq. 9)

Every head returns a dict with "logits" and, when labels are given, "loss".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clickprompt.config import PromptConfig
from clickprompt.ctr.base import CTRModel
from clickprompt.plm.prefix import PLMWithPrompts
from clickprompt.prompting import PromptGenerator


class CTRClassifier(nn.Module):
    """y = sigma(MLP(q)) (Eq. 10 / Sec 2.1): the CTR model with the BCE loss of Eq. 2.

    Its state dict is the bare CTR model's under the prefix `ctr.`, so a ClickPrompt w/o PLM
    checkpoint loads into the plain CTR model and the inference graph is exactly the backbone's."""

    def __init__(self, ctr: CTRModel):
        super().__init__()
        self.ctr = ctr

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
        out = self.plm.encode(input_ids, attention_mask, output_attentions=output_attentions, **kwargs)  # Eq. 7
        if output_attentions:
            hidden, attentions = out
            return q, hidden, attentions
        return q, out


class ClickPromptForPretraining(nn.Module):
    """PA-MLM (Sec 3.5.1): recover masked text tokens from the text context and the soft prompts
    generated from the intact ID features. The vocabulary projection runs at masked positions only.

    The objective follows the PLM family (`core.plm.objective`): with `mlm_labels` (BERT, RoBERTa, BART)
    the masked-token loss; for BART the encoder reads the masked text and the decoder the original one
    (rebuilt here from the labels), see clickprompt.plm.prefix_seq2seq. With `clm_labels` (GPT-2) PA-CLM
    (App. C.3): the next-token loss over the unmasked text, prompts as layer-wise prefixes."""

    def __init__(self, core: ClickPromptModel):
        super().__init__()
        self.core = core

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


class ClickPromptForCTR(nn.Module):
    """Finetuning with PLM (Sec 3.5.2, Eq. 9):
        y_CTR = MLP(q),  y_PLM = MLP(Pooling(h_{L+1})),  y = sigma(alpha * y_CTR + (1 - alpha) * y_PLM)
    with alpha a learnable scalar (initialised at 0.5).

    pooling "auto" takes the PLM family's default (clickprompt.plm.prefix): [CLS]/<s> for BERT/RoBERTa,
    the last real token for GPT-2 (the only state that has read the whole text) and for BART (the
    decoder state at the final </s>). dropout: the head's dropout, by default the PLM's own hidden
    dropout (0.1 for BERT/RoBERTa/GPT-2/BART checkpoints), as transformers' classification heads do."""

    def __init__(self, core: ClickPromptModel, pooling: str = "auto", dropout: float | None = None):
        super().__init__()
        self.core = core
        self.pooling = core.plm.resolve_pooling(pooling)
        dropout = core.plm.hidden_dropout if dropout is None else dropout
        H = core.plm.hidden_size
        self.plm_head = nn.Sequential(nn.Linear(H, H), nn.Tanh(), nn.Dropout(dropout), nn.Linear(H, 1))  # Eq. 8
        self.alpha = nn.Parameter(torch.tensor(0.5))

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
