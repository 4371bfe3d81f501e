"""Typed configuration, one dataclass per concern.

Override order (one place, documented): dataclass defaults, then a YAML file, then `key=value`
overrides (CLI `--set ctr.embed_dim=16`). Unknown keys and values of the wrong type are refused with a
message naming the key. Defaults follow the paper (Sec 4.1.4, Appendix B.1); each says where it
comes from.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import yaml

from clickprompt.errors import ClickPromptError


@dataclass
class DataConfig:
    dataset: str = "ml-100k"  # a registered source name (clickprompt data list)
    processed_dir: str = "data/processed"  # prepared datasets live in <processed_dir>/<dataset>
    max_length: int = 128  # token budget of the text view, special tokens included
    pad_to_multiple: int = 1  # text batches padded to a multiple of this many tokens: few distinct shapes,
    # so torch.compile / CUDA graphs (train.compile) reuse their compiled code; padding is masked (1 = off)


@dataclass
class CTRConfig:
    """CTR backbone hyper-parameters. Defaults: Appendix B.1 (DNN 3 x 256, dropout 0.1, AutoInt 1
    head of size 32, CIN 25 units, FGCNN 6/8/10/12 channels, kernel 7, pool 2, recombination 3)."""

    model: str = "dcnv2"
    embed_dim: int = 32  # 32 for MovieLens/BookCrossing, 16 for Amazon-Toys/GoodReads (B.1)
    dnn_hidden: int = 256  # size of each DNN layer, from {128, 256, 512}
    dnn_layers: int = 3  # number of DNN layers, from {3, 4, 5, 6}
    dropout: float = 0.1  # from {0.0, 0.1, 0.2}
    cross_layers: int | None = None  # DCN/DCNv2 cross layers; None = dnn_layers (B.1)
    dcnv2_structure: str = "parallel"  # DCNv2 paper Sec 3: "parallel" (authors' code) or "stacked"
    cin_layers: int = 3  # xDeepFM CIN layers, from {2, 3, 4, 5}
    cin_units: int = 25  # units per CIN layer
    attn_layers: int = 3  # AutoInt attention layers, from {3, 4, 5, 6}
    attn_heads: int = 1
    attn_dim: int = 32
    gnn_layers: int = 3  # FiGNN graph layers, residual connections
    fgcnn_channels: tuple[int, ...] = (6, 8, 10, 12)
    fgcnn_kernel: int = 7
    fgcnn_pool: int = 2
    fgcnn_recombine: int = 3


@dataclass
class PLMConfig:
    name: str = "minilm-l6"  # alias, hub id or local path (clickprompt.plm.ALIASES)
    pooling: str = "auto"  # Eq. 8: "cls", "mean", "last" (real token) or "auto" = the family's (cls; last for GPT-2/BART)


@dataclass
class PromptConfig:
    num_prompts: int = 5  # K, from {1, 3, 5, 7} (Sec 4.1.4)
    strategy: str = "layerwise"  # "layerwise" (Fig. 3 right, default) or "input" (Fig. 3 left)
    use_prompts: bool = True  # False: the "w/o Prompt" ablation (two towers, Table 5)


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 256  # finetuning: 256 ML/BX, 1024 AZ-Toys, 4096 GoodReads (Sec 4.1.4)
    lr: float = 1e-3  # CTR part (Sec 4.1.4)
    plm_lr: float = 5e-5  # PLM part: {0, 3e-5, 5e-5}; 0 freezes the PLM
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0  # {0, 0.05, 0.1} for PA-MLM
    grad_accum: int = 1
    patience: int = 2  # early stopping on validation AUC
    max_steps: int | None = None  # stop after this many optimizer steps (quick profiles, tests)
    eval_batch_size: int = 1024
    seed: int = 42
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1"
    precision: str = "auto"  # "fp32", "bf16" (autocast) or "auto" (bf16 where the hardware has it)
    num_workers: int = 0
    log_every: int = 50
    save_every: int = 500  # optimizer steps between resumable trainer-state saves (0: epoch ends only)
    group_by_length: bool = False  # text stages: batch samples of similar token length (less padding)
    # finetuning from a PA-MLM run: what it takes over. "all": the whole checkpoint (CTR model; with the PLM
    # also the prompt generator and the PA-MLM'd PLM); "interaction": the CTR model's embeddings and
    # interaction layers only (with the PLM: the published PLM and a fresh generator); "embeddings": the
    # CTR model's embedding tables only. The CTR head, which PA-MLM does not train, is new except in "all".
    transfer: str = "all"
    # PA-MLM early stopping: stop after this many epochs without a lower validation LM loss (None: run every
    # epoch; either way the epoch with the lowest validation loss is the one kept)
    pretrain_patience: int | None = None
    # text batches gathered on the training device from a device-resident token cache (data.text.
    # DeviceTokenCache): no host assembly or copy per batch, a GPU's speed path; the same batches either way
    device_batches: bool = False
    compile: bool = False  # torch.compile the model for training steps (a GPU's speed path; CPU results differ
    # only in floating-point rounding, if at all)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    ctr: CTRConfig = field(default_factory=CTRConfig)
    plm: PLMConfig = field(default_factory=PLMConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # keys set on purpose (YAML file, --set, flags) rather than by defaults or a profile: a finetuning
    # refuses those that contradict the architecture its pretraining run fixes (inherit_architecture)
    explicit: ClassVar[frozenset] = frozenset()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        cfg = cls()
        apply_dict(cfg, d)
        return cfg


class ConfigError(ClickPromptError, ValueError):
    """A setting that cannot work: unknown key, wrong type, value out of range (one line naming the key)."""


def _coerce(value, annotation, key: str):
    """Convert `value` to the dataclass field's declared type, or raise ConfigError naming the key."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        return tuple(_coerce(v, args[0], key) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"config key {key!r}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}") from None
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key {key!r}: expected a number, got {value!r}") from None
    if annotation is str:
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
        return str(value)
    return value


FLAG_KEYS = {  # every run flag of the command line (argparse dest) -> the config key it sets: the one map
    "dataset": "data.dataset",
    "processed_dir": "data.processed_dir",
    "model": "ctr.model",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "max_steps": "train.max_steps",
    "device": "train.device",
    "precision": "train.precision",
    "plm": "plm.name",
    "num_prompts": "prompt.num_prompts",
    "strategy": "prompt.strategy",
    "plm_lr": "train.plm_lr",
    "use_prompts": "prompt.use_prompts",  # --no-prompts stores False here
}


def flag_overrides(args) -> dict:
    """{config key: value} for the dedicated flags given on the command line (FLAG_KEYS)."""
    return {key: getattr(args, attr) for attr, key in FLAG_KEYS.items() if getattr(args, attr, None) is not None}


def set_key(cfg, dotted: str, value) -> None:
    """Set `section.key` on a RunConfig, checking the key exists and coercing the type."""
    section_name, _, key = dotted.partition(".")
    if not key:
        raise ConfigError(f"config key {dotted!r}: expected section.key (e.g. ctr.embed_dim)")
    section = getattr(cfg, section_name, None)
    if section is None or not dataclasses.is_dataclass(section):
        known = [f.name for f in dataclasses.fields(cfg)]
        raise ConfigError(f"config key {dotted!r}: unknown section {section_name!r} (known: {known})")
    hints = typing.get_type_hints(type(section))
    if key not in hints:
        raise ConfigError(f"config key {dotted!r}: unknown key (known in {section_name}: {sorted(hints)})")
    setattr(section, key, _coerce(value, hints[key], dotted))


def apply_dict(cfg, d: dict, prefix: str = "") -> None:
    for section, values in d.items():
        if not isinstance(values, dict):
            raise ConfigError(f"config section {prefix}{section!r}: expected a mapping, got {values!r}")
        for key, value in values.items():
            set_key(cfg, f"{section}.{key}", value)


def load_config(yaml_path: str | Path | None = None, overrides: list[str] | dict | None = None) -> RunConfig:
    """Defaults, then the YAML file, then `section.key=value` overrides (no profile, no stage)."""
    return load_stage_config(None, "train-ctr", yaml_path, overrides)


PROFILES_DIR = Path(__file__).parent / "profiles"
STAGES = ("train-ctr", "pretrain", "finetune-with-plm", "finetune-without-plm")  # = clickprompt.rundir.Stage


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def _profile(name: str) -> dict:
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown profile {name!r}; known: {list_profiles()}")
    return yaml.safe_load(path.read_text()) or {}


def profile_dict(name: str, stage: str, act: str | None = None) -> dict:
    """A profile (clickprompt/profiles/NAME.yaml) holds a `common` block and one block per stage;
    the stage's settings are `common` updated by the stage block. An `act` (e.g. "control", the
    positive control of `clickprompt quick`) adds its own stage block on top."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; known: {list(STAGES)}")
    data = _profile(name)
    merged: dict = {}
    for block in (data.get("common", {}), data.get(stage, {}), ((data.get(act) or {}) if act else {}).get(stage, {})):
        for section, values in (block or {}).items():
            merged.setdefault(section, {}).update(values or {})
    return merged


def profile_act(name: str, act: str) -> dict:
    """An act's own settings outside the stages (e.g. the control act's `synth` options), {} if none."""
    return dict((_profile(name).get(act) or {}).get("synth") or {})


def profile_option(name: str, block: str, key: str, default=None):
    """One setting of a profile's block that is not a stage's (e.g. `quick: {with_plm_ctr_from: ...}`)."""
    return (_profile(name).get(block) or {}).get(key, default)


def _parse_override(item) -> tuple[str, object]:
    if isinstance(item, tuple):
        return item
    key, sep, value = str(item).partition("=")
    if not sep:
        raise ConfigError(f"override {item!r}: expected section.key=value")
    return key.strip(), yaml.safe_load(value) if value.strip() else value


def read_yaml_file(path, what: str = "config file", error: type[Exception] | None = None):
    """A YAML file's content ({} when empty), or one line naming the file: missing, or not valid YAML."""
    error = error or ConfigError
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: {what} not found")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None


def _read_yaml(yaml_path) -> dict:
    path = Path(yaml_path)
    loaded = read_yaml_file(path)
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    loaded.pop("profile", None)
    return loaded


def load_stage_config(profile: str | None, stage: str, yaml_path=None, overrides=None, flags: dict | None = None,
                      act: str | None = None) -> RunConfig:
    """The one route from settings to a RunConfig, later layers winning: dataclass defaults, the
    profile's stage block, the YAML file, `section.key=value` overrides (--set), then the command
    line's dedicated flags ({key: value}, FLAG_KEYS). Every value given is applied as given, including
    one that equals a default. The keys set by the last three layers are recorded in `cfg.explicit`."""
    cfg = RunConfig()
    if profile:
        apply_dict(cfg, profile_dict(profile, stage, act))
    explicit = set()
    if yaml_path is not None:
        loaded = _read_yaml(yaml_path)
        apply_dict(cfg, loaded)
        explicit |= {f"{section}.{key}" for section, values in loaded.items() for key in values}
    items = overrides.items() if isinstance(overrides, dict) else [_parse_override(o) for o in overrides or []]
    for key, value in list(items) + list((flags or {}).items()):
        set_key(cfg, key.strip(), value)
        explicit.add(key.strip())
    cfg.explicit = frozenset(explicit)
    return cfg


# ---------------------------------------------------------------- validation, before anything touches the disk

POOLINGS = ("auto", "cls", "mean", "last")
PRECISIONS = ("auto", "fp32", "bf16")
TRANSFERS = ("all", "interaction", "embeddings")


def _check(ok: bool, key: str, value, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r}: {rule}")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def validate(cfg: RunConfig, stage: str) -> None:
    """Refuse settings that cannot give a meaningful run, with one line naming the key: no epoch or
    batch of size < 1, no learning rate that is not a finite number (> 0; >= 0 for the PLM part, where 0
    freezes it), a device this machine has, known model / strategy / pooling names."""
    from clickprompt.ctr import list_ctr
    from clickprompt.prompting import STRATEGIES

    t = cfg.train
    for key in ("epochs", "batch_size", "eval_batch_size", "grad_accum", "patience", "log_every"):
        _check(getattr(t, key) >= 1, f"train.{key}", getattr(t, key), "must be at least 1")
    _check(t.grad_accum <= t.batch_size, "train.grad_accum", t.grad_accum, f"cannot exceed train.batch_size ({t.batch_size})")
    _check(t.max_steps is None or t.max_steps >= 1, "train.max_steps", t.max_steps, "must be at least 1 (or null: no cap)")
    _check(t.save_every >= 0 and t.num_workers >= 0, "train.save_every/num_workers", (t.save_every, t.num_workers), "must be >= 0")
    _check(_finite(t.lr) and t.lr > 0, "train.lr", t.lr, "must be a finite number > 0")
    if stage in ("pretrain", "finetune-with-plm"):
        _check(_finite(t.plm_lr) and t.plm_lr >= 0, "train.plm_lr", t.plm_lr, "must be a finite number >= 0 (0 freezes the PLM)")
    _check(_finite(t.weight_decay) and t.weight_decay >= 0, "train.weight_decay", t.weight_decay, "must be a finite number >= 0")
    _check(_finite(t.warmup_ratio) and 0 <= t.warmup_ratio < 1, "train.warmup_ratio", t.warmup_ratio, "must be in [0, 1)")
    _check(t.precision in PRECISIONS, "train.precision", t.precision, f"expected one of {PRECISIONS}")
    _check(t.transfer in TRANSFERS, "train.transfer", t.transfer, f"expected one of {TRANSFERS}")
    _check(t.pretrain_patience is None or t.pretrain_patience >= 1, "train.pretrain_patience", t.pretrain_patience,
           "must be at least 1 (or null: no early stopping)")
    check_device(t.device)
    _check(cfg.data.max_length >= 8, "data.max_length", cfg.data.max_length, "must be at least 8 tokens")
    _check(cfg.data.pad_to_multiple >= 1, "data.pad_to_multiple", cfg.data.pad_to_multiple, "must be at least 1")
    _check(cfg.ctr.model in list_ctr(), "ctr.model", cfg.ctr.model, f"unknown CTR model; known: {', '.join(list_ctr())}")
    c = cfg.ctr
    for key in ("embed_dim", "dnn_hidden", "dnn_layers", "attn_heads", "attn_dim"):
        _check(getattr(c, key) >= 1, f"ctr.{key}", getattr(c, key), "must be at least 1")
    _check(_finite(c.dropout) and 0 <= c.dropout < 1, "ctr.dropout", c.dropout, "must be in [0, 1)")
    if stage in ("pretrain", "finetune-with-plm"):
        _check(cfg.prompt.num_prompts >= 1, "prompt.num_prompts", cfg.prompt.num_prompts, "must be at least 1")
        _check(cfg.prompt.strategy in STRATEGIES, "prompt.strategy", cfg.prompt.strategy, f"expected one of {STRATEGIES}")
        _check(cfg.plm.pooling in POOLINGS, "plm.pooling", cfg.plm.pooling, f"expected one of {POOLINGS}")


def check_device(name: str) -> None:
    """One line if `name` is not a device this machine has ("auto", "cpu", "cuda", "cuda:N", "mps")."""
    import torch

    if name in ("auto", "cpu"):
        return
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"train.device = {name!r}: unknown device (expected auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device = {name!r}: CUDA is not available on this machine (use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"train.device = {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"train.device = {name!r}: MPS is not available on this machine (use cpu or auto)")
    elif device.type != "cpu":
        raise ConfigError(f"train.device = {name!r}: unsupported device type (expected auto, cpu, cuda, cuda:N or mps)")


# ---------------------------------------------------------------- the architecture a pretraining run fixes

ARCHITECTURE = ("plm.name", "prompt.num_prompts", "prompt.strategy")  # and every ctr.* key


def _get(cfg: RunConfig, dotted: str):
    section, _, key = dotted.partition(".")
    return getattr(getattr(cfg, section), key)


def inherit_architecture(cfg: RunConfig, pretrained: RunConfig, source: str) -> None:
    """A finetuning takes its architecture (every ctr.* key, plm.name, prompt.num_prompts, prompt.strategy)
    from the pretraining run it starts from. A key set on purpose (`cfg.explicit`) to another value is
    refused with one line naming the key and both values; profile defaults simply yield."""
    keys = [f"ctr.{f.name}" for f in dataclasses.fields(CTRConfig)] + list(ARCHITECTURE)
    for key in keys:
        mine, theirs = _get(cfg, key), _get(pretrained, key)
        if key in cfg.explicit and mine != theirs:
            raise ConfigError(f"{key} = {mine!r} conflicts with the pretraining run {source} ({key} = {theirs!r}); "
                              "the architecture comes from the pretraining run: drop the setting, or pretrain anew")
        section, _, name = key.partition(".")
        setattr(getattr(cfg, section), name, theirs)
