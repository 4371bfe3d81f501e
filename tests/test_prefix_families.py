"""The prompt adapter for the decoder-only and encoder-decoder families of App. C.3 (GPT-2 and BART),
on tiny random configs with byte-level BPE tokenizers trained here (no hub access).

The rules are those of tests/test_prefix.py for BERT/RoBERTa: prompts change the output, a zeroed
prefix mask reproduces the no-prompt output, no prompts equals the plain model, padding is never
attended, gradients reach the CTR embeddings through the generator, plus the family objectives
(PA-CLM next-token loss for GPT-2; masked-position reconstruction from decoder states for BART).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clickprompt.plm import build_plm_from_config, wrap_plm
from clickprompt.plm.prefix_seq2seq import Seq2SeqPLMWithPrompts
from clickprompt.plm.tiny import train_bpe_tokenizer, train_gpt2_tokenizer
from clickprompt.prompting import PromptGenerator

from prefix_helpers import encode_with_noisy_padding

K = 3
D_Q = 8
TEXTS = [
    "User ID is 12 . Gender is female . Age is 25 . Occupation is programmer .",
    "Movie title is Toy Story (1995) .",
    "Genre is Animation . Zip code is 55455 .",
]
STRATEGIES = ["layerwise", "input"]


def _tiny(family: str):
    from transformers import BartConfig, GPT2Config

    if family == "gpt2":
        tok = train_gpt2_tokenizer(TEXTS * 2, vocab_size=300)
        cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_inner=64, n_positions=64,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    else:
        tok = train_bpe_tokenizer(TEXTS * 2, vocab_size=300)
        cfg = BartConfig(vocab_size=len(tok), d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
                         decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         decoder_start_token_id=tok.eos_token_id, forced_eos_token_id=None)
    return tok, cfg


@pytest.fixture(scope="module", params=["gpt2", "bart"])
def family(request):
    torch.manual_seed(0)
    tok, cfg = _tiny(request.param)
    model, tok, info = build_plm_from_config(cfg, tok)
    model.eval()
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    return request.param, wrap_plm(model), tok, info, enc


def _prompts(plm, strategy, q, seed=1):
    torch.manual_seed(seed)
    out = PromptGenerator.for_plm(D_Q, plm, K, strategy)(q)
    return {"prefix_kv": out} if strategy == "layerwise" else {"prompt_embeds": out}


def _q(B=len(TEXTS), seed=2):
    return torch.randn(B, D_Q, generator=torch.Generator().manual_seed(seed))


def test_family_table(family):
    name, plm, tok, info, enc = family
    assert info.model_type == name
    if name == "gpt2":
        assert type(plm) is not Seq2SeqPLMWithPrompts and plm.objective == "clm"
        assert plm.resolve_pooling("auto") == "last" and plm.num_layers == 2
        assert tok("hello")["input_ids"] == tok("hello", add_special_tokens=False)["input_ids"]  # GPT-2 adds nothing
    else:
        assert isinstance(plm, Seq2SeqPLMWithPrompts) and plm.objective == "mlm" and plm.is_encoder_decoder
        assert plm.num_layers == info.num_layers == 2 + 3  # encoder + decoder prompt layers
        assert plm.resolve_pooling("auto") == "last"
    assert enc.attention_mask.eq(0).any()  # right padding present


def test_without_prompts_equals_plain_model(family):
    name, plm, _, _, enc = family
    real = enc.attention_mask.bool()
    with torch.no_grad():
        ours = plm.encode(enc.input_ids, enc.attention_mask)
        if name == "gpt2":
            plain = plm.model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, output_hidden_states=True)
            plain = plain.hidden_states[-1]
        else:  # BartModel shifts input_ids right itself when no decoder inputs are given
            plain = plm.bart(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
    assert ours.shape == (len(TEXTS), enc.input_ids.shape[1], 32)
    torch.testing.assert_close(ours[real], plain[real], atol=1e-5, rtol=0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_prompts_change_output(family, strategy):
    _, plm, _, _, enc = family
    with torch.no_grad():
        base = plm.encode(enc.input_ids, enc.attention_mask)
        prompted = plm.encode(enc.input_ids, enc.attention_mask, **_prompts(plm, strategy, _q()))
    real = enc.attention_mask.bool()
    assert prompted.shape == base.shape
    assert (prompted - base)[real].abs().max() > 1e-3
    assert torch.isfinite(prompted).all()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_zeroed_prefix_mask_reproduces_no_prefix(family, strategy):
    _, plm, _, _, enc = family
    B = len(TEXTS)
    with torch.no_grad():
        base = plm.encode(enc.input_ids, enc.attention_mask)
        off = plm.encode(enc.input_ids, enc.attention_mask, prefix_mask=torch.zeros(B, K, dtype=torch.long),
                         **_prompts(plm, strategy, _q()))
    real = enc.attention_mask.bool()
    torch.testing.assert_close(off[real], base[real], atol=1e-5, rtol=0)


def test_bart_encoder_and_decoder_prefixes_both_matter(family):
    """Layer-wise BART: prompt layers 0..L_enc-1 reach the encoder, the rest the decoder."""
    name, plm, _, _, enc = family
    if name != "bart":
        pytest.skip("encoder-decoder only")
    kw = _prompts(plm, "layerwise", _q())
    real = enc.attention_mask.bool()
    with torch.no_grad():
        full = plm.encode(enc.input_ids, enc.attention_mask, **kw)
        for layers in (slice(0, plm.encoder_layers), slice(plm.encoder_layers, plm.num_layers)):
            cut = kw["prefix_kv"].clone()
            cut[layers] = torch.randn_like(cut[layers])
            assert (plm.encode(enc.input_ids, enc.attention_mask, prefix_kv=cut) - full)[real].abs().max() > 1e-4


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gradients_reach_ctr_embeddings(family, strategy):
    _, plm, _, _, enc = family
    torch.manual_seed(3)
    ctr_embedding = nn.Embedding(10, D_Q)
    torch.manual_seed(1)
    gen = PromptGenerator.for_plm(D_Q, plm, K, strategy)
    ids = torch.tensor([1, 4, 7])
    out = gen(ctr_embedding(ids))
    kw = {"prefix_kv": out} if strategy == "layerwise" else {"prompt_embeds": out}
    hidden = plm.encode(enc.input_ids, enc.attention_mask, **kw)
    probe = torch.randn(hidden.shape[-1], generator=torch.Generator().manual_seed(0))
    (hidden @ probe).pow(2).mean().backward()
    grad = ctr_embedding.weight.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert (grad[ids].abs().sum(dim=1) > 0).all() and grad[[0, 2, 3]].abs().sum() == 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_padding_is_never_attended(family, strategy):
    _, plm, tok, _, enc = family
    attn, key_pad = encode_with_noisy_padding(plm, tok, enc, _prompts(plm, strategy, _q()), K)  # (B, K + Z)
    for layer_attn in attn:  # GPT-2: its layers; BART: the encoder's
        assert layer_attn.shape[-2:] == (enc.input_ids.shape[1], K + enc.input_ids.shape[1])
        assert layer_attn.masked_select(key_pad[:, None, None, :].expand_as(layer_attn)).abs().max() == 0
        assert (layer_attn[..., :K] > 0).all()  # every text query sees the K prompts


def test_eager_and_sdpa_agree(family):
    _, plm, _, _, enc = family
    kw = _prompts(plm, "layerwise", _q())
    with torch.no_grad():
        a, _ = plm.encode(enc.input_ids, enc.attention_mask, output_attentions=True, **kw)  # eager
        b = plm.encode(enc.input_ids, enc.attention_mask, **kw)  # sdpa
    real = enc.attention_mask.bool()
    torch.testing.assert_close(a[real], b[real], atol=1e-5, rtol=0)


def test_prefix_shape_is_checked(family):
    _, plm, _, _, enc = family
    bad = torch.zeros(plm.num_layers + 1, 2, len(TEXTS), plm.num_heads, K, plm.head_dim)
    with pytest.raises(ValueError, match="expected \\(L, 2, B, heads, K, head_dim\\)"):
        plm.encode(enc.input_ids, enc.attention_mask, prefix_kv=bad)


def test_gpt2_clm_loss_is_the_shifted_lm_loss(family):
    """PA-CLM: our next-token loss equals transformers' own causal-LM loss (labels = ids, pads -100)."""
    name, plm, _, _, enc = family
    if name != "gpt2":
        pytest.skip("decoder-only only")
    labels = enc.input_ids.masked_fill(enc.attention_mask.eq(0), -100)
    with torch.no_grad():
        ours = plm.clm_loss(plm.encode(enc.input_ids, enc.attention_mask), labels)
        ref = plm.model(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                        position_ids=torch.arange(enc.input_ids.shape[1]).expand_as(enc.input_ids), labels=labels).loss
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_bart_reconstruction_logits_match_the_lm(family):
    """BART PA-MLM: decoder states at masked positions, through lm_head + final_logits_bias, equal
    BartForConditionalGeneration's logits with the encoder reading the corrupted text and the decoder the
    original one."""
    name, plm, tok, _, enc = family
    if name != "bart":
        pytest.skip("encoder-decoder only")
    corrupted = enc.input_ids.clone()
    positions = torch.zeros_like(corrupted, dtype=torch.bool)
    positions[0, [2, 5]] = True
    positions[2, 3] = True
    corrupted[positions] = tok.mask_token_id
    with torch.no_grad():
        hidden = plm.encode(corrupted, enc.attention_mask, target_ids=enc.input_ids)
        ours = plm.mlm_logits(hidden, positions)
        ref = plm.model(input_ids=corrupted, attention_mask=enc.attention_mask,
                        decoder_input_ids=plm.shift_right(enc.input_ids)).logits
    torch.testing.assert_close(ours, ref[positions], atol=1e-5, rtol=1e-5)


def test_pool_last_and_auto(family):
    _, plm, _, _, enc = family
    hidden = torch.randn(len(TEXTS), enc.input_ids.shape[1], 32)
    last = plm.pool(hidden, enc.attention_mask, "last")
    for i, m in enumerate(enc.attention_mask):
        torch.testing.assert_close(last[i], hidden[i, int(m.sum()) - 1])
    with pytest.raises(ValueError):
        plm.resolve_pooling("max")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_bf16_autocast_close_to_fp32(family, strategy):
    """CUDA training runs under bf16 autocast: prompts are cast to the compute dtype, masks stay valid."""
    name, plm, _, _, enc = family
    kw = _prompts(plm, strategy, _q())
    labels = enc.input_ids.masked_fill(enc.attention_mask.eq(0), -100)
    loss_fn = plm.clm_loss if name == "gpt2" else plm.mlm_loss
    with torch.no_grad():
        loss32 = loss_fn(plm.encode(enc.input_ids, enc.attention_mask, **kw), labels)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden16 = plm.encode(enc.input_ids, enc.attention_mask, **kw)
            loss16 = loss_fn(hidden16, labels)
            _, attn = plm.encode(enc.input_ids, enc.attention_mask, output_attentions=True, **kw)  # eager + bf16
    assert torch.isfinite(loss16) and all(torch.isfinite(a).all() for a in attn)
    assert abs(loss16.item() - loss32.item()) < 0.05 * loss32.item()
