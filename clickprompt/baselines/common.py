"""What the four baselines share: their settings route, the user/item split of a dataset's fields, the
text encoder and its classification head, and the plumbing of a stage (run directory, tokenizer,
checkpoint config, the pretraining run a second stage starts from).

Settings of a baseline stage (`stage_config`), later layers winning, as config.load_stage_config does
for the ClickPrompt stages: dataclass defaults, the profile's `common` block and its block for the
stage (clickprompt/profiles/<profile>.yaml, e.g. `ptab-finetune:`), `--config FILE`, `--set`, the
command line's flags. A profile without a block for the stage (quick, tiny) takes the method's recipe
from the `paper` profile's block (App. B.2): its `train` and `ctr` sections only, so the PLM and the data
stay the profile's own. The baselines need no settings beyond RunConfig's sections.
"""

from __future__ import annotations

import re

import yaml
from torch import nn

from clickprompt.config import (
    POOLINGS, PROFILES_DIR, ConfigError, RunConfig, apply_dict, list_profiles, load_stage_config, set_key, validate,
)
from clickprompt.data.dataset import PreparedDataset
from clickprompt.data.schema import FeatureSpec
from clickprompt.pipeline import load_dataset, run_settings, save_tokenizer, text_checkpoint_config  # noqa: F401
from clickprompt.rundir import ModelKind, RunDir, Stage

RECIPE_SECTIONS = ("ctr", "train")  # what a profile without a baseline's block takes from paper.yaml
ENCODER_TYPES = ("bert", "roberta")  # CTR-BERT, PTab and CTRL read text with a BERT-family encoder


# ---------------------------------------------------------------- settings


def _profile_yaml(name: str) -> dict:
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown profile {name!r}; known: {list_profiles()}")
    return yaml.safe_load(path.read_text()) or {}


def profile_block(profile: str | None, stage: Stage | str) -> dict:
    """The profile's `common` block updated by its block for `stage`, or, where it has none, by the
    `train` and `ctr` sections of the paper profile's block (the method's App. B.2 recipe)."""
    data = _profile_yaml(profile) if profile else {}
    own = data.get(str(stage))
    if own is None:
        recipe = _profile_yaml("paper").get(str(stage)) or {}
        own = {section: values for section, values in recipe.items() if section in RECIPE_SECTIONS}
    merged: dict = {}
    for block in (data.get("common") or {}, own or {}):
        for section, values in block.items():
            merged.setdefault(section, {}).update(values or {})
    return merged


def stage_config(profile: str | None, stage: Stage | str, yaml_path=None, overrides=None,
                 flags: dict | None = None) -> RunConfig:
    """A baseline stage's RunConfig (module docstring): the profile's block, then the layers given on
    purpose, through config.load_stage_config (so `cfg.explicit` lists them, as for every stage)."""
    given = load_stage_config(None, "train-ctr", yaml_path, overrides, flags)  # the explicit layers only
    cfg = RunConfig()
    apply_dict(cfg, profile_block(profile, stage))
    for key in sorted(given.explicit):
        section, _, name = key.partition(".")
        set_key(cfg, key, getattr(getattr(given, section), name))
    cfg.explicit = given.explicit
    return cfg


def validate_stage(cfg: RunConfig, stage: Stage) -> None:
    """config.validate plus what every baseline stage reads (pooling; the PLM's lr where it has its own)."""
    validate(cfg, str(stage))
    if cfg.plm.pooling not in POOLINGS:
        raise ConfigError(f"plm.pooling = {cfg.plm.pooling!r}: expected one of {POOLINGS}")


# ---------------------------------------------------------------- user and item fields (CTR-BERT's towers)

# item-key field names (lowercase, letters and digits only) of datasets whose source is not registered
ITEM_KEYS = ("itemid", "movieid", "bookid", "isbn", "asin", "productid", "item")


def user_item_fields(spec: FeatureSpec) -> tuple[list[int], list[int]]:
    """(user field indices, item field indices). Every source lists the user's fields first, then the
    item's, starting at the item key (clickprompt.data.sources). The item key is the source's own
    `item_col` where the dataset is a registered source (ml-100k: item_id, bookcrossing: isbn,
    goodreads: book_id), else the first field named like one of ITEM_KEYS (item_id, movieId, ...)."""
    from clickprompt.data.sources import get_source

    names = spec.names
    try:
        key = get_source(spec.dataset).spec.item_col
    except (KeyError, AttributeError):
        key = None
    squashed = [re.sub(r"[^a-z0-9]", "", n.lower()) for n in names]
    if key in names:
        first = names.index(key)
    else:
        first = next((j for j, n in enumerate(squashed) if n in ITEM_KEYS), None)
    if not first:  # None, or 0: no user field before the item key
        raise ConfigError(
            f"dataset {spec.dataset!r}: cannot tell the user fields from the item fields (fields: {', '.join(names)}); "
            f"CTR-BERT expects the user's fields first, then the item's, starting at an item key field named one of "
            f"{', '.join(ITEM_KEYS)} (case and '_' ignored): rename the item column in the dataset's schema")
    return list(range(first)), list(range(first, len(names)))


# ---------------------------------------------------------------- the text encoder and its head


class ClassificationHead(nn.Sequential):
    """A click logit from pooled text states: Linear - tanh - dropout - Linear, the head of Eq. 8 (y_PLM in
    ClickPromptForCTR) and of transformers' sequence classifiers. (B, in_dim) -> (B, 1)."""

    def __init__(self, in_dim: int, hidden: int, dropout: float):
        super().__init__(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, 1))


def check_plm_family(cfg: RunConfig, method: str, types=ENCODER_TYPES):
    """The PLM's transformers config, refused (one line, before anything is written) unless its model_type
    is one of `types`."""
    from transformers import AutoConfig

    from clickprompt.plm import resolve_plm

    config = AutoConfig.from_pretrained(resolve_plm(cfg.plm.name), local_files_only=True)
    if config.model_type not in types:
        raise ConfigError(f"plm.name = {cfg.plm.name!r}: {method} reads text with a {' or '.join(types)} model, "
                          f"not {config.model_type!r}")
    return config


def load_encoder(name: str, *, mlm_head: bool = False):
    """(PLMWithPrompts, tokenizer, PLMInfo): the published PLM; with `mlm_head` its token head too (built
    when the checkpoint has none, as for PA-MLM), else the bare encoder (no pooler)."""
    from clickprompt.plm import load_plm, wrap_plm

    model, tokenizer, info = load_plm(name, with_mlm_head=mlm_head)
    return wrap_plm(model), tokenizer, info


def encoder_from_config(hf_config: dict, *, mlm_head: bool = False):
    """A PLMWithPrompts of the shape `hf_config` describes (random weights; a checkpoint fills them)."""
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

    from clickprompt.plm import wrap_plm

    config = AutoConfig.for_model(**hf_config)
    if mlm_head:
        return wrap_plm(AutoModelForMaskedLM.from_config(config))
    return wrap_plm(AutoModel.from_config(config, add_pooling_layer=False))


# ---------------------------------------------------------------- a stage's plumbing


def pretraining_run(pretrained, ds: PreparedDataset, kind: ModelKind, method: str) -> tuple[RunDir, dict]:
    """The run a second stage starts from and its checkpoint config, checked: kind and data."""
    if not pretrained:
        raise ConfigError(f"{method}: needs its pretraining run (--pretrained RUN, a finished {kind} run)")
    pre = RunDir(pretrained)
    return pre, pre.start_point(ds, kind, f"a {str(kind)!r} run ({method})")


def begin_first_stage(cfg: RunConfig, stage: Stage, method: str, pretrained) -> PreparedDataset:
    """Everything a baseline's first stage checks before it writes (it starts from the published PLM): no
    --pretrained run, its settings, a PLM family the method supports; returns the dataset."""
    if pretrained:
        raise ConfigError(f"{stage} starts from the published PLM; it takes no --pretrained run")
    validate_stage(cfg, stage)
    check_plm_family(cfg, method)
    return load_dataset(cfg)


def begin_second_stage(cfg: RunConfig, stage: Stage, kind: ModelKind, pretrained):
    """Everything a baseline's second stage checks before it writes: its settings, the data, and the run it
    starts from (kind, data, architecture inherited). Returns (cfg copy, dataset, that run, its checkpoint
    config, the run-key extras recording it)."""
    import copy

    from clickprompt.config import inherit_architecture

    cfg = copy.deepcopy(cfg)
    validate_stage(cfg, stage)
    ds = load_dataset(cfg)
    pre, pre_config = pretraining_run(pretrained, ds, kind, str(stage))
    inherit_architecture(cfg, RunConfig.from_dict(pre_config["run_config"]), str(pre.path))
    extra = {"pretrained": str(pretrained), "pretrained_weights": pre.weights_sha256()}
    return cfg, ds, pre, pre_config, extra


def run_tokenizer(run: RunDir, plm_name: str):
    """The tokenizer a run saved beside its checkpoint (else the PLM's own)."""
    from transformers import AutoTokenizer

    from clickprompt.plm import resolve_plm

    source = run.tokenizer_dir if run.tokenizer_dir.is_dir() else resolve_plm(plm_name)
    return AutoTokenizer.from_pretrained(source, local_files_only=True)
