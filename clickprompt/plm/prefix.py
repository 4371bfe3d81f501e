"""The adapter between ClickPrompt and transformers' model internals (transformers==5.23 pinned).

ClickPrompt (Lin et al., WWW'24) feeds the CTR model's soft prompts into the PLM in one of two ways
(Fig. 3):

* layer-wise (Fig. 3 right, Eq. 7, the paper's default): at every layer l the K prompts are extra
  key/value states that the Z text tokens attend to, P-tuning-v2 style. `prefix_kv` has shape
  (L, 2, B, heads, K, head_dim); index 0 of the second axis is the key, 1 the value. They enter
  through the model's `past_key_values`: a FRESH `DynamicCache` is built for every call (in
  transformers 5.x a Cache is filled in place by each forward, so reusing one would stack the text's
  own keys onto the next call), pre-filled per layer with `cache.update(key_l, value_l, l)`. The
  attention mask gets K ones in front (or `prefix_mask`), so the 2D mask covers K + Z keys; BERT's
  encoder mask builder then takes kv_length from the mask ("prefix tuning" special case in
  `masking_utils._preprocess_mask_arguments`). Prompts are never queries: only text tokens update.
* input-layer only (Fig. 3 left): `prompt_embeds` (B, K, H) are prepended to the word embeddings,
  the mask is extended, and the K prompt positions are dropped from the returned hidden states.
  They are treated like word embeddings (token-type and position embeddings, LayerNorm and dropout
  apply), as in the authors' code, which passes them as `inputs_embeds`.

dtype: prefixes are cast to the dtype the layers compute keys in (the autocast dtype inside
`torch.autocast`, else the weights' dtype), so bf16 autocast and bf16 weights both work.

Position ids (a choice, made here once): the text keeps exactly the position ids it would have
without prompts (BERT: 0..Z-1; RoBERTa: padding_idx+1.. over non-pad tokens, pads at padding_idx).
We pass `position_ids` explicitly because BERT otherwise shifts them by the cache length, i.e. by K,
and RoBERTa adds the cache length to its padding-offset positions. Reasons: a prompt is not a word
and has no place in the sentence; the text's position embeddings then match what the PLM was
pretrained on; and a prefix whose mask is zeroed reproduces the no-prefix output exactly (tested).
The authors' P-tuning-v2-style code let transformers 4.x shift the text to start at K; pass
`shift_text_positions=True` to reproduce that. In the input-layer variant all K prompts take the
position id of the first text token ([CLS] / <s>) unless shifting, where they take the first K
positions and the text follows them.

Attention weights (Table 7): `output_attentions=True` switches the model to the eager attention path
for that call (SDPA returns no weights) and returns, per layer, weights of shape (B, heads, Z, K + Z):
queries are text tokens, keys are [K prompts + Z tokens]. Pad keys get exactly 0. The weights are
returned after attention dropout, so read them in eval mode (then each row sums to 1).

Gradient checkpointing: transformers' GradientCheckpointingLayer silently sets past_key_values=None
in training, which would drop the layer-wise prompts, so `encode` refuses that combination.

Families (`_FAMILIES`, one row per transformers `model_type`):

    model_type  kind             pretraining objective               head      default pooling
    bert        encoder          PA-MLM (Sec 3.5.1)                  cls       cls ([CLS])
    roberta     encoder          PA-MLM                              lm_head   cls (<s>)
    gpt2        decoder-only     PA-CLM (App. C.3): next token       lm_head   last real token
    bart        encoder-decoder  PA-MLM, decoder reconstructs       lm_head   last real token (decoder)

GPT-2 (decoder-only, App. C.3) goes through the same code path as BERT: its causal self-attention
takes the K prompts of layer l as past keys/values, so every text token attends to all K prompts
and to the text before it (transformers' causal mask builder offsets the query positions by the
cache length K, so prefix keys are always visible). Text position ids are passed explicitly (0..Z-1),
as for BERT. The pretraining objective is prompt-augmented causal LM: the next-token cross-entropy
over the real text tokens (`clm_loss`). The CTR head pools the last real token, the only one that
has read the whole text. The encoder-decoder family (BART) lives in prefix_seq2seq.py; `clickprompt.plm.wrap_plm`
picks the adapter for a model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import DynamicCache

IGNORE_INDEX = -100


@dataclass(frozen=True)
class _Family:
    head_attr: str  # attribute of the *ForMaskedLM / *ForCausalLM model holding the token head
    padding_offset_positions: bool  # RoBERTa: positions start at padding_idx + 1, pads sit at padding_idx
    kind: str = "encoder"  # "encoder", "decoder" (decoder-only, causal) or "encoder-decoder"
    objective: str = "mlm"  # pretraining: "mlm" (masked tokens, PA-MLM) or "clm" (next token, PA-CLM)
    default_pooling: str = "cls"  # what plm.pooling "auto" means for this family (Eq. 8)
    dropout_attr: str = "hidden_dropout_prob"  # the config's hidden dropout (also used by the CTR head)
    logits_bias_attr: str | None = None  # a bias buffer added to the head's logits (BART final_logits_bias)


_FAMILIES = {
    "bert": _Family(head_attr="cls", padding_offset_positions=False),
    "roberta": _Family(head_attr="lm_head", padding_offset_positions=True),
    "gpt2": _Family(head_attr="lm_head", padding_offset_positions=False, kind="decoder", objective="clm",
                    default_pooling="last", dropout_attr="resid_pdrop"),
    "bart": _Family(head_attr="lm_head", padding_offset_positions=False, kind="encoder-decoder",
                    default_pooling="last", dropout_attr="dropout", logits_bias_attr="final_logits_bias"),
}
SUPPORTED_MODEL_TYPES = tuple(_FAMILIES)
POOLING_MODES = ("auto", "cls", "mean", "last")


def family_of(model_type: str) -> _Family:
    if model_type not in _FAMILIES:
        raise ValueError(f"model_type {model_type!r} is not supported (known: {', '.join(_FAMILIES)})")
    return _FAMILIES[model_type]


class PLMWithPrompts(nn.Module):
    """Wraps a BERT/RoBERTa (masked-LM) or GPT-2 (causal-LM) model so that soft prompts can enter it.

    encode -> hidden (B, Z, H) of the text tokens; mlm_logits / mlm_loss -> the token head at masked
    positions only; clm_loss -> next-token loss (decoder-only families); pool -> (B, H).
    """

    def __init__(self, model: nn.Module, *, shift_text_positions: bool = False):
        super().__init__()
        config = model.config
        family = family_of(config.model_type)
        if family.kind == "encoder" and getattr(config, "is_decoder", False):
            raise ValueError("PLMWithPrompts expects a bidirectional encoder (config.is_decoder=False)")
        self.model = model  # the *ForMaskedLM / *ForCausalLM model, or the bare backbone
        self.family = family
        self.shift_text_positions = shift_text_positions

    # ----------------------------------------------------------------------------- structure
    @property
    def config(self):
        return self.model.config

    @property
    def encoder(self) -> nn.Module:
        """The bare BertModel / RobertaModel / GPT2Model (BartModel for BART); shares weights with `model`."""
        base = getattr(self.model, self.model.base_model_prefix, None)
        return base if base is not None else self.model

    @property
    def mlm_head(self) -> nn.Module | None:
        return getattr(self.model, self.family.head_attr, None)

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def num_heads(self) -> int:
        return self.config.num_attention_heads

    @property
    def head_dim(self) -> int:
        return self.config.hidden_size // self.config.num_attention_heads

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def objective(self) -> str:
        """"mlm" (PA-MLM: masked tokens) or "clm" (PA-CLM: next token) -- what pretraining optimises."""
        return self.family.objective

    @property
    def is_encoder_decoder(self) -> bool:
        return self.family.kind == "encoder-decoder"

    @property
    def hidden_dropout(self) -> float:
        """The PLM's own hidden dropout; the CTR head on the PLM uses it too (as HF classification heads do)."""
        return float(getattr(self.config, self.family.dropout_attr, 0.1) or 0.0)

    def resolve_pooling(self, mode: str) -> str:
        """"auto" -> the family's default (cls for encoders, last for GPT-2 and BART)."""
        if mode not in POOLING_MODES:
            raise ValueError(f"pooling {mode!r}: expected one of {POOLING_MODES}")
        return self.family.default_pooling if mode == "auto" else mode

    # ----------------------------------------------------------------------------- positions
    def _first_position(self) -> int:
        return self.config.pad_token_id + 1 if self.family.padding_offset_positions else 0

    def text_position_ids(self, input_ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Position ids (B, Z) of the text, as the plain model computes them, shifted by `offset`."""
        B, Z = input_ids.shape
        if self.family.padding_offset_positions:
            # RobertaEmbeddings.create_position_ids_from_input_ids with past_key_values_length=offset
            pad = self.config.pad_token_id
            real = input_ids.ne(pad).long()  # (B, Z)
            return (torch.cumsum(real, dim=1) + offset) * real + pad
        return torch.arange(offset, offset + Z, device=input_ids.device).expand(B, Z)

    def _check_positions(self, slots: int) -> None:
        """`slots` = number of position slots used (Z, or K + Z when shifting)."""
        top = self._first_position() + slots - 1  # largest position id we may ask for
        if top >= self.config.max_position_embeddings:
            raise ValueError(
                f"sequence needs position id {top} but the PLM has max_position_embeddings="
                f"{self.config.max_position_embeddings}; shorten the text or the prompts"
            )

    # ----------------------------------------------------------------------------- dtype / attention path
    def _compute_dtype(self, device: torch.device) -> torch.dtype:
        """dtype the attention layers compute keys/values in: the autocast dtype, else the weights' dtype."""
        if torch.is_autocast_enabled(device.type):
            return torch.get_autocast_dtype(device.type)
        return self.encoder.get_input_embeddings().weight.dtype

    @contextlib.contextmanager
    def _eager_attention(self, active: bool):
        """Temporarily use transformers' eager attention (the only path that returns weights)."""
        current = self.config._attn_implementation
        if not active or current == "eager":
            yield
            return
        self.model.set_attn_implementation("eager")
        try:
            yield
        finally:
            self.model.set_attn_implementation(current)

    # ----------------------------------------------------------------------------- encode
    _LAYERS = ""  # what L counts, in the prefix_kv shape error (encoder-decoder families say so)

    def _check_prompts(self, batch: int, prefix_kv: torch.Tensor | None, prompt_embeds: torch.Tensor | None) -> int:
        """K, the number of prompts (0 without any), once the prompt tensors passed to `encode` are checked."""
        if prefix_kv is not None and prompt_embeds is not None:
            raise ValueError("pass prefix_kv (layer-wise) or prompt_embeds (input layer), not both")
        if prompt_embeds is not None:
            if prompt_embeds.shape[0] != batch or prompt_embeds.shape[2] != self.hidden_size:
                raise ValueError(
                    f"prompt_embeds has shape {tuple(prompt_embeds.shape)}, expected (B={batch}, K, H={self.hidden_size})"
                )
            return prompt_embeds.shape[1]
        if prefix_kv is None:
            return 0
        expected = (self.num_layers, 2, batch, self.num_heads, prefix_kv.shape[-2], self.head_dim)
        if tuple(prefix_kv.shape) != expected:
            raise ValueError(
                f"prefix_kv has shape {tuple(prefix_kv.shape)}, expected (L, 2, B, heads, K, head_dim) = {expected}"
                + self._LAYERS
            )
        if self.model.training and getattr(self.model, "is_activation_checkpointing", False):
            # GradientCheckpointingLayer sets past_key_values=None in training: the prompts would vanish.
            raise RuntimeError(
                "gradient checkpointing drops past_key_values (the layer-wise prompts) in transformers 5.x; "
                "disable it (model.activation_checkpointing_disable()) or use the input-layer strategy"
            )
        return prefix_kv.shape[-2]

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        prefix_kv: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        output_attentions: bool = False,
        prefix_mask: torch.Tensor | None = None,
        target_ids: torch.Tensor | None = None,
    ):
        """Last hidden states of the text tokens, (B, Z, H); `(hidden, attentions)` if `output_attentions`.

        input_ids, attention_mask: (B, Z). prefix_kv: (L, 2, B, heads, K, head_dim), layer-wise prompts.
        prompt_embeds: (B, K, H), input-layer prompts. At most one of the two. prefix_mask: (B, K),
        which prompts may be attended to (default all ones). attentions: tuple of L tensors
        (B, heads, Z, K + Z), keys ordered [prompts, text]; K = 0 without prompts. target_ids: the
        uncorrupted text, read by encoder-decoder families' decoders only (ignored here).
        """
        B, Z = input_ids.shape
        K = self._check_prompts(B, prefix_kv, prompt_embeds)
        device = input_ids.device
        kwargs = {"output_attentions": True} if output_attentions else {}

        if prefix_kv is None and prompt_embeds is None:
            self._check_positions(Z)
            with self._eager_attention(output_attentions):
                out = self.encoder(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    position_ids=self.text_position_ids(input_ids),
                    **kwargs,
                )
            hidden, attn = out.last_hidden_state, getattr(out, "attentions", None)
            return (hidden, attn) if output_attentions else hidden

        if prefix_mask is None:
            prefix_mask = torch.ones(B, K, dtype=attention_mask.dtype, device=device)
        full_mask = torch.cat([prefix_mask.to(attention_mask.dtype), attention_mask], dim=1)  # (B, K + Z)
        shift = K if self.shift_text_positions else 0
        self._check_positions(Z + shift)
        text_pos = self.text_position_ids(input_ids, offset=shift)  # (B, Z)

        if prefix_kv is not None:
            prefix_kv = prefix_kv.to(self._compute_dtype(device))
            cache = DynamicCache()  # fresh per call: a Cache is filled in place by every forward
            # unbind, not prefix_kv[layer, 0]: each indexing op's backward would zero-fill a gradient of the
            # whole prefix tensor (2L of them per step); unbind's backward stacks the slices' gradients once
            for layer, (key, value) in enumerate(kv.unbind(0) for kv in prefix_kv.unbind(0)):
                cache.update(key, value, layer)  # (B, heads, K, head_dim) each
            with self._eager_attention(output_attentions):
                out = self.encoder(
                    input_ids=input_ids,
                    attention_mask=full_mask,
                    position_ids=text_pos,
                    past_key_values=cache,
                    **kwargs,
                )
            hidden = out.last_hidden_state  # (B, Z, H): prompts are keys/values only
            attn = getattr(out, "attentions", None)  # L x (B, heads, Z, K + Z)
        else:
            word = self.encoder.get_input_embeddings()(input_ids)  # (B, Z, H)
            inputs_embeds = torch.cat([prompt_embeds.to(word.dtype), word], dim=1)  # (B, K + Z, H)
            if self.shift_text_positions:  # prompts take the first K slots, the text follows
                prompt_pos = (self._first_position() + torch.arange(K, device=device)).expand(B, K)
            else:
                prompt_pos = torch.full((B, K), self._first_position(), dtype=torch.long, device=device)
            position_ids = torch.cat([prompt_pos, text_pos], dim=1)  # (B, K + Z)
            with self._eager_attention(output_attentions):
                out = self.encoder(
                    inputs_embeds=inputs_embeds,
                    attention_mask=full_mask,
                    position_ids=position_ids,
                    **kwargs,
                )
            hidden = out.last_hidden_state[:, K:]  # (B, Z, H): drop the prompt positions
            attn = getattr(out, "attentions", None)
            if attn is not None:
                attn = tuple(a[:, :, K:, :] for a in attn)  # L x (B, heads, Z, K + Z): text queries only
        return (hidden, attn) if output_attentions else hidden

    forward = encode

    # ----------------------------------------------------------------------------- heads
    def mlm_logits(self, hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Token-head logits (N, V) at the N positions where `positions` (B, Z, bool) is true, row-major order.

        Gathers first, then runs the head: the vocabulary projection is most of a step's cost. For
        GPT-2 the logits at position t score token t + 1; for BART (decoder states) token t.
        """
        head = self.mlm_head
        if head is None:
            raise ValueError("this PLM was loaded without an MLM head (load_plm(..., with_mlm_head=True))")
        selected = hidden[positions.bool()]  # (N, H)
        logits = head(selected)  # (N, V)
        if self.family.logits_bias_attr is not None:
            logits = logits + getattr(self.model, self.family.logits_bias_attr).to(logits.dtype)  # (1, V) broadcast
        return logits

    def mlm_loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over positions with label != -100 (0, still in the graph, if there are none)."""
        positions = labels.ne(IGNORE_INDEX)  # (B, Z)
        logits = self.mlm_logits(hidden, positions)  # (N, V); the gather is the step's one host sync
        if logits.shape[0] == 0:
            return logits.sum() * 0.0
        return F.cross_entropy(logits.float(), labels[positions])

    def clm_loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """PA-CLM (App. C.3): mean next-token cross-entropy. labels (B, Z): the text's token ids with -100 at
        padding; the state at t scores token t + 1, so the first token is never a target (no BOS here)."""
        return self.mlm_loss(hidden[:, :-1], labels[:, 1:])  # (B, Z-1, H) against tokens 1..Z-1

    @staticmethod
    def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str = "cls") -> torch.Tensor:
        """(B, Z, H) -> (B, H) (Eq. 8): "cls" = first token, "mean" = mean over real (mask = 1) tokens,
        "last" = the last real token (for causal models the only one that has read the whole text)."""
        if mode == "cls":
            return hidden[:, 0]
        if mode == "mean":
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, Z, 1)
            return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
        if mode == "last":
            last = attention_mask.long().cumsum(dim=1).argmax(dim=1)  # (B,) first position reaching the count
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        raise ValueError(f"pooling {mode!r}: expected 'cls', 'mean' or 'last'")
