"""Tiny randomly initialised language models saved as ordinary local model directories.

For tests, CI and smoke runs of the notebooks: `make_tiny_plm(dir, "bert")` writes a 2-layer BERT
with the MiniLM WordPiece tokenizer; `make_tiny_plm(dir, "roberta", texts=...)` trains a byte-level BPE
tokenizer on `texts` offline (the `tokenizers` library) and writes a 2-layer RoBERTa. Either directory
then loads like any model: `load_plm(str(dir))`, or `plm.name: <dir>` in a config.
"""

from __future__ import annotations

from pathlib import Path

import torch

ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's order: pad id 1 = padding_idx


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


def make_tiny_plm(out_dir: str | Path, family: str = "bert", *, texts=None, hidden: int = 32, layers: int = 2,
                  heads: int = 4, seed: int = 0) -> Path:
    from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, RobertaConfig

    from clickprompt.plm.backbone import ALIASES

    out = Path(out_dir)
    common = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=2 * hidden, max_position_embeddings=256)
    if family == "bert":
        tok = AutoTokenizer.from_pretrained(ALIASES["minilm-l6"], local_files_only=True)
        config = BertConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, **common)
    elif family == "roberta":
        if texts is None:
            raise ValueError("a tiny RoBERTa needs `texts` to train its byte-level BPE tokenizer on")
        tok = train_bpe_tokenizer(texts)
        config = RobertaConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                               eos_token_id=tok.eos_token_id, type_vocab_size=1, **common)
    else:
        raise ValueError(f"family {family!r}: expected 'bert' or 'roberta'")
    torch.manual_seed(seed)
    model = AutoModelForMaskedLM.from_config(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
