"""Checks shared by test_prefix.py (BERT, RoBERTa) and test_prefix_families.py (GPT-2, BART); not a test module."""

from __future__ import annotations

import torch


def encode_with_noisy_padding(plm, tokenizer, enc, prompts: dict, num_prompts: int):
    """Encode `enc` with `prompts`, and again with random token ids wherever the attention mask is 0.
    Asserts padding is never read (the real tokens' outputs agree) and that the eager attention path
    was only borrowed for the call. Returns the clean call's attention weights (one per layer,
    (B, heads, Z, K + Z)) and the keys that are padding, (B, K + Z)."""
    pad = ~enc.attention_mask.bool()
    assert pad.any()
    noisy = enc.input_ids.clone()
    g = torch.Generator().manual_seed(5)
    noisy[pad] = torch.randint(5, len(tokenizer), (int(pad.sum()),), generator=g)  # garbage where the mask is 0
    with torch.no_grad():
        a, attn = plm.encode(enc.input_ids, enc.attention_mask, output_attentions=True, **prompts)
        b = plm.encode(noisy, enc.attention_mask, **prompts)
    real = enc.attention_mask.bool()
    torch.testing.assert_close(a[real], b[real], atol=1e-5, rtol=0)
    assert plm.config._attn_implementation == "sdpa"  # eager was only borrowed for the call
    key_pad = torch.cat([torch.zeros(len(pad), num_prompts, dtype=torch.bool), pad], dim=1)
    return attn, key_pad
