"""The pretrained-language-model side of ClickPrompt.

All code that touches transformers internals (cache, attention mask, position ids, attention
implementation) lives in this package, behind `PLMWithPrompts` (prefix.py). transformers is pinned
(==5.23.0, pyproject.toml); tests/test_prefix.py checks the rules this adapter relies on.
"""

from clickprompt.plm.backbone import ALIASES, PLMInfo, PLMNotFoundError, build_plm_from_config, load_plm, resolve_plm
from clickprompt.plm.prefix import IGNORE_INDEX, PLMWithPrompts

__all__ = [
    "ALIASES",
    "IGNORE_INDEX",
    "PLMInfo",
    "PLMNotFoundError",
    "PLMWithPrompts",
    "build_plm_from_config",
    "load_plm",
    "resolve_plm",
]
