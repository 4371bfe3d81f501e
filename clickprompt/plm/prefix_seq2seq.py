"""Soft prompts for an encoder-decoder PLM (BART), ClickPrompt App. C.3 (transformers==5.23 pinned).

The paper applies "the layer-wise prompting strategy to GPT2 and BART" without saying how prompts
enter an encoder-decoder. The choice made here:

* Layer-wise (Fig. 3 right): L = L_enc + L_dec prompt layers. Layers 0..L_enc-1 of `prefix_kv` are
  key/value prefixes of the ENCODER self-attention (every text token attends to the K prompts, as in
  BERT); layers L_enc..L-1 are prefixes of the DECODER self-attention (every decoder position attends
  to the K prompts and, causally, to the decoder inputs before it). Cross-attention gets no prompts:
  it reads the encoder's text states, which already carry them. So one generator (Eq. 6) serves
  both stacks, with g_{l,k} for l over encoder layers then decoder layers. Encoder and decoder must
  have the same number of heads and hidden size (true for every BART checkpoint).
* Input-layer only (Fig. 3 left): the K prompt embeddings are prepended to the encoder's input
  embeddings (token embeddings scaled as BART scales them; prompts are not scaled); the decoder
  cross-attends to the K prompt positions as well as to the text. Nothing enters the decoder
  directly.
* Position ids: as for the other families, the text keeps the positions it has without prompts
  (encoder and decoder 0..Z-1); in the input-layer variant the prompts take position 0. BART does not
  accept position ids, so (a) the decoder's prefix cache reports a sequence length of 0
  (`_PromptCache`; BartDecoder derives position ids from it) and the decoder's attention mask is built
  here as a 4D mask, which transformers uses as given; (b) the input-layer variant adds
  pos(wanted) - pos(k) to the embeddings at slot k, so the encoder's own arange(K + Z) positions
  sum to the wanted ones. `shift_text_positions=True` keeps BART's shifted positions instead.
* Decoder input: the text shifted right behind `decoder_start_token_id` (BART's teacher forcing), so
  the decoder state at t has read tokens < t and predicts token t. Encoder: the (possibly corrupted)
  text. `target_ids` (the uncorrupted text) feeds the decoder when given, else `input_ids`.
* Pretraining (PA-MLM for BART, a choice): the encoder reads the PA-MLM-masked text (15%, 8:1:1,
  clickprompt.masking), the decoder reads the ORIGINAL text shifted right, and the loss is the
  cross-entropy of the decoder's prediction at the masked positions only (`mlm_loss` on the returned
  decoder states). BART's own denoising loss covers every position; restricting it to the corrupted
  ones keeps the objective comparable with PA-MLM (a copied, unmasked token needs no prompt) and the
  vocabulary projection small.
* Finetuning: `encode` returns the decoder's text states (B, Z, H); pooling "last" (the default) is
  the decoder state at the last real token (the final </s>, as in BartForSequenceClassification),
  which has read the whole text through the decoder and the encoder; "mean" averages decoder states.

The encoder prefixes use the encoder layers' `past_key_values` keyword, which BartEncoder passes
through to its attention modules; the mask builder then sizes keys from the (K + Z) 2D mask (the
"prefix tuning" case of `masking_utils._preprocess_mask_arguments`). tests/test_prefix_families.py
checks the rules: prompts change the output, a zeroed prefix mask reproduces the no-prompt output,
no prompts equals the plain BartModel, padding is never attended, gradients reach the generator.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from clickprompt.plm.prefix import PLMWithPrompts


class _PromptCache(DynamicCache):
    """The decoder's self-attention cache pre-filled with the K prompt keys/values per layer. It reports a
    sequence length of 0 because BartDecoder turns the cache length into a position offset and prompts
    take no text positions; the decoder's mask is a 4D tensor built by the adapter, so no mask size is
    derived from this length."""

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


class Seq2SeqPLMWithPrompts(PLMWithPrompts):
    """PLMWithPrompts for BART (BartForConditionalGeneration, or the bare BartModel)."""

    _LAYERS = " with L = encoder + decoder layers"

    def __init__(self, model: nn.Module, *, shift_text_positions: bool = False):
        super().__init__(model, shift_text_positions=shift_text_positions)
        c = self.config
        if c.encoder_attention_heads != c.decoder_attention_heads:
            raise ValueError("encoder and decoder need the same number of attention heads for one prompt generator")

    # ----------------------------------------------------------------------------- structure
    @property
    def bart(self) -> nn.Module:
        return self.encoder  # the BartModel (base_model_prefix "model"), or the model itself if bare

    @property
    def encoder_layers(self) -> int:
        return self.config.encoder_layers

    @property
    def decoder_layers(self) -> int:
        return self.config.decoder_layers

    @property
    def num_layers(self) -> int:
        """L = encoder layers + decoder layers: prompt layers 0..L_enc-1 go to the encoder, the rest to the decoder."""
        return self.encoder_layers + self.decoder_layers

    def shift_right(self, ids: torch.Tensor) -> torch.Tensor:
        """Decoder inputs: decoder_start_token_id, then ids[:, :-1] (-100 -> pad), transformers' own function."""
        from transformers.models.bart.modeling_bart import shift_tokens_right

        return shift_tokens_right(ids, self.config.pad_token_id, self.config.decoder_start_token_id)

    def _decoder_mask(self, prefix_mask: torch.Tensor, attention_mask: torch.Tensor, dtype) -> torch.Tensor:
        """(B, 1, Z, K + Z) decoder self-attention mask: all unmasked prompts, then causal over real tokens.
        bool (True = attend) for SDPA, additive float for the eager path (as transformers builds them)."""
        Z = attention_mask.shape[1]
        causal = torch.ones(Z, Z, dtype=torch.bool, device=attention_mask.device).tril()  # (Z, Z)
        text = causal[None] & attention_mask.bool()[:, None, :]  # (B, Z, Z): key j <= query i, j real
        prompts = prefix_mask.bool()[:, None, :].expand(-1, Z, -1)  # (B, Z, K)
        allowed = torch.cat([prompts, text], dim=-1)[:, None]  # (B, 1, Z, K + Z)
        if self.config._attn_implementation == "eager":
            return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
                ~allowed, torch.finfo(dtype).min
            )
        return allowed

    def _position_fix(self, K: int, Z: int, device) -> torch.Tensor:
        """(K + Z, H) added to the input-layer embeddings so that BART's positions arange(K + Z) become
        [0]*K + arange(Z): prompts at the first text position, the text where it is without prompts."""
        emb = self.bart.encoder.embed_positions
        actual = torch.arange(K + Z, device=device)
        wanted = torch.cat([torch.zeros(K, dtype=torch.long, device=device), torch.arange(Z, device=device)])
        return emb.weight[wanted + emb.offset] - emb.weight[actual + emb.offset]  # (K + Z, H)

    # ----------------------------------------------------------------------------- encode
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
        """Decoder states of the text, (B, Z, H); `(hidden, encoder attentions)` if `output_attentions`.

        input_ids, attention_mask (B, Z): the encoder's text. prefix_kv (L_enc + L_dec, 2, B, heads, K,
        head_dim): layer-wise prompts, encoder layers first. prompt_embeds (B, K, H): input-layer
        prompts. prefix_mask (B, K). target_ids (B, Z): uncorrupted text for the decoder (default
        input_ids). attentions: the encoder's self-attention, L_enc x (B, heads, Z, K + Z).
        """
        B, Z = input_ids.shape
        K = self._check_prompts(B, prefix_kv, prompt_embeds)
        device = input_ids.device
        if prefix_mask is None:
            prefix_mask = torch.ones(B, K, dtype=attention_mask.dtype, device=device)
        prefix_mask = prefix_mask.to(attention_mask.dtype)
        full_mask = torch.cat([prefix_mask, attention_mask], dim=1)  # (B, K + Z)
        input_layer = prompt_embeds is not None
        self._check_positions(Z + (K if input_layer and self.shift_text_positions else 0))
        dtype = self._compute_dtype(device)
        enc_kwargs = {"output_attentions": True} if output_attentions else {}
        dec_cache = None
        with self._eager_attention(output_attentions):
            # ---- encoder
            if prefix_kv is not None:
                prefix_kv = prefix_kv.to(dtype)
                enc_cache = DynamicCache()  # fresh per call: a Cache is filled in place by every forward
                dec_self = _PromptCache()
                # unbind, not prefix_kv[l, 0]: see PLMWithPrompts.encode (one gradient stack, not 2L zero-fills)
                for l, (key, value) in enumerate(kv.unbind(0) for kv in prefix_kv.unbind(0)):  # (B, heads, K, head_dim)
                    if l < self.encoder_layers:
                        enc_cache.update(key, value, l)
                    else:
                        dec_self.update(key, value, l - self.encoder_layers)
                dec_cache = EncoderDecoderCache(dec_self, DynamicCache())  # cross-attention: filled from the encoder
                enc = self.bart.encoder(input_ids=input_ids, attention_mask=full_mask, past_key_values=enc_cache,
                                        **enc_kwargs)
                memory, memory_mask = enc.last_hidden_state, attention_mask  # (B, Z, H): prompts are keys only
            elif input_layer:
                word = self.bart.encoder.embed_tokens(input_ids)  # (B, Z, H), scaled as BART scales it
                embeds = torch.cat([prompt_embeds.to(word.dtype), word], dim=1)  # (B, K + Z, H)
                if not self.shift_text_positions:
                    embeds = embeds + self._position_fix(K, Z, device).to(embeds.dtype)
                enc = self.bart.encoder(inputs_embeds=embeds, attention_mask=full_mask, **enc_kwargs)
                memory, memory_mask = enc.last_hidden_state, full_mask  # (B, K + Z, H): the decoder reads the prompts too
            else:
                enc = self.bart.encoder(input_ids=input_ids, attention_mask=attention_mask, **enc_kwargs)
                memory, memory_mask = enc.last_hidden_state, attention_mask
            # ---- decoder (teacher forcing on the uncorrupted text)
            targets = input_ids if target_ids is None else target_ids
            k_dec = K if prefix_kv is not None else 0
            dec_mask = self._decoder_mask(prefix_mask if k_dec else prefix_mask[:, :0], attention_mask, dtype)
            dec = self.bart.decoder(
                input_ids=self.shift_right(targets), attention_mask=dec_mask, encoder_hidden_states=memory,
                encoder_attention_mask=memory_mask, past_key_values=dec_cache, use_cache=False,
            )
        hidden = dec.last_hidden_state  # (B, Z, H): state t predicts token t
        if not output_attentions:
            return hidden
        attn = enc.attentions
        if input_layer and attn is not None:
            attn = tuple(a[:, :, K:, :] for a in attn)  # text queries only
        return hidden, attn

    forward = encode
