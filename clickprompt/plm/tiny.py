"""Tiny randomly initialised language models saved as ordinary local model directories.

For tests, CI and smoke runs of the notebooks: `make_tiny_plm(dir, "bert")` writes a 2-layer BERT
with the MiniLM WordPiece tokenizer; `make_tiny_plm(dir, "roberta", texts=...)` trains a byte-level BPE
tokenizer on `texts` offline (the `tokenizers` library) and writes a 2-layer RoBERTa. Either directory
then loads like any model: `load_plm(str(dir))`, or `plm.name: <dir>` in a config.

The decoder-only and encoder-decoder families of App. C.3: `make_tiny_plm(dir, "gpt2", texts=...)`
writes a 2-layer GPT-2 (causal-LM head) with a GPT-2-style byte-level BPE (one special token,
<|endoftext|>, as bos/eos/unk/pad; like GPT-2 it adds no special tokens to a text), and
`make_tiny_plm(dir, "bart", texts=...)` a 2+2-layer BART with a RoBERTa-style BPE (BART's tokenizer
is RoBERTa's). `dropout` sets every dropout of the model (0 makes runs comparable across process
counts, tests/test_ddp_clickprompt.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's order: pad id 1 = padding_idx
GPT2_SPECIAL = "<|endoftext|>"


def train_bpe_tokenizer(texts, vocab_size: int = 400):
    """A RoBERTa-style byte-level BPE tokenizer trained on `texts` (no download)."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=1, special_tokens=ROBERTA_SPECIALS,
                            show_progress=False)
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
    )


def train_gpt2_tokenizer(texts, vocab_size: int = 400):
    """A GPT-2-style byte-level BPE trained on `texts` (no download): no post-processor, one special token."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=1, special_tokens=[GPT2_SPECIAL],
                            show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=GPT2_SPECIAL, eos_token=GPT2_SPECIAL,
                                   unk_token=GPT2_SPECIAL, pad_token=GPT2_SPECIAL)


def make_tiny_plm(out_dir: str | Path, family: str = "bert", *, texts=None, hidden: int = 32, layers: int = 2,
                  heads: int = 4, seed: int = 0, dropout: float | None = None) -> Path:
    from transformers import (AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer, BartConfig, BertConfig,
                              GPT2Config, RobertaConfig)

    from clickprompt.plm.backbone import ALIASES

    out = Path(out_dir)
    common = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=2 * hidden, max_position_embeddings=256)
    if dropout is not None:
        common.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if family in ("roberta", "gpt2", "bart") and texts is None:
        raise ValueError(f"a tiny {family} needs `texts` to train its byte-level BPE tokenizer on")
    auto = AutoModelForMaskedLM
    if family == "bert":
        tok = AutoTokenizer.from_pretrained(ALIASES["minilm-l6"], local_files_only=True)
        config = BertConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, **common)
    elif family == "roberta":
        tok = train_bpe_tokenizer(texts)
        config = RobertaConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                               eos_token_id=tok.eos_token_id, type_vocab_size=1, **common)
    elif family == "gpt2":
        tok = train_gpt2_tokenizer(texts)
        p = 0.1 if dropout is None else dropout
        config = GPT2Config(vocab_size=len(tok), n_embd=hidden, n_layer=layers, n_head=heads, n_inner=2 * hidden,
                            n_positions=256, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                            resid_pdrop=p, embd_pdrop=p, attn_pdrop=p)
        auto = AutoModelForCausalLM
    elif family == "bart":
        tok = train_bpe_tokenizer(texts)
        p = 0.1 if dropout is None else dropout
        config = BartConfig(vocab_size=len(tok), d_model=hidden, encoder_layers=layers, decoder_layers=layers,
                            encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=2 * hidden,
                            decoder_ffn_dim=2 * hidden, max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                            decoder_start_token_id=tok.eos_token_id, forced_eos_token_id=None, dropout=p,
                            attention_dropout=p, activation_dropout=0.0)
    else:
        raise ValueError(f"family {family!r}: expected 'bert', 'roberta', 'gpt2' or 'bart'")
    torch.manual_seed(seed)
    model = auto.from_config(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
