"""The pretrained-language-model side of ClickPrompt.

All code that touches transformers internals (cache, attention mask, position ids, attention
implementation) lives in this package, behind `PLMWithPrompts` (prefix.py: BERT, RoBERTa, GPT-2) and
`Seq2SeqPLMWithPrompts` (prefix_seq2seq.py: BART); `wrap_plm(model)` picks one. transformers is pinned
(==5.23.0, pyproject.toml); tests/test_prefix.py and tests/test_prefix_families.py check the rules
these adapters rely on.
"""

from torch import nn

from clickprompt.plm.backbone import ALIASES, PLMInfo, PLMNotFoundError, build_plm_from_config, load_plm, resolve_plm
from clickprompt.plm.prefix import IGNORE_INDEX, SUPPORTED_MODEL_TYPES, PLMWithPrompts, family_of
from clickprompt.plm.prefix_seq2seq import Seq2SeqPLMWithPrompts


def wrap_plm(model: nn.Module, **kwargs) -> PLMWithPrompts:
    """The prompt adapter for `model`'s family: PLMWithPrompts (BERT, RoBERTa, GPT-2) or
    Seq2SeqPLMWithPrompts (BART)."""
    if family_of(model.config.model_type).kind == "encoder-decoder":
        return Seq2SeqPLMWithPrompts(model, **kwargs)
    return PLMWithPrompts(model, **kwargs)


__all__ = [
    "ALIASES",
    "IGNORE_INDEX",
    "PLMInfo",
    "PLMNotFoundError",
    "PLMWithPrompts",
    "Seq2SeqPLMWithPrompts",
    "SUPPORTED_MODEL_TYPES",
    "build_plm_from_config",
    "load_plm",
    "resolve_plm",
    "wrap_plm",
]
