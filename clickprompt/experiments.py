"""Every experiment of the paper by configuration: `clickprompt experiment configs/NAME.yaml --dataset D`.

An experiment file (configs/*.yaml) describes one table of the paper as ARMS (runs of one stage:
a CTR model from scratch, a pretraining, a finetuning variant) that differ by a few settings. The
runner expands it into run directories, runs what is missing, reuses what is finished, and writes a
summary table. All runs go through the stage functions of clickprompt.pipeline; an ablation is a
switch on that one code path (Table 5: prompt.use_prompts and the presence of a pretraining run;
Table 4: prompt.strategy).

Experiment file (unknown keys are refused):

    experiment: table5_fusion_ablation      # name (default: the file's stem)
    paper: "Table 5 (Sec 4.4.2) ..."         # what it reproduces, shown in the summary
    profile: paper                           # settings profile (clickprompt/profiles), --profile overrides
    seeds: [42, 43, 44]                      # --seeds overrides
    settings: {plm.name: roberta-base}       # every run; "STAGE/section.key" limits a key to one stage
    dataset_settings: {amazon-toys: {ctr.embed_dim: 16}}   # per dataset (Sec 4.1.4, App. B.1)
    matrix: {ctr.model: [dcnv2, autoint, dnn]}             # row groups: every arm once per combination
    pretrain: {pa-mlm: {set: {...}}}         # named pretraining runs that arms start from
    arms:                                    # in table order
      clickprompt: {stage: finetune-with-plm, pretrained: pa-mlm}
      wo-prompt: {stage: finetune-with-plm, pretrained: pa-mlm, set: {prompt.use_prompts: false},
                  reference: clickprompt, label: "w/o Prompt"}
    contrasts: [{arm: clickprompt, against: [wo-prompt]}]  # extra pairwise rows (Table 2's Rel.Impr)
    sweep: {prompt.num_prompts: [1, 3, 5, 7], finetune-with-plm/train.plm_lr: [0, 3.0e-5, 5.0e-5]}
    delong: per-seed                         # or pooled, see below
    share_pretraining: false                 # true: every seed finetunes from the first seed's pretraining

Settings of a run, later ones win: dataclass defaults < profile (stage block) < --config FILE <
settings < dataset_settings < matrix values < sweep point < the pretrain's / arm's `set` < command-line
--set and flags (--epochs, --max-steps, ...). Then data.dataset and train.seed are set. A --set of a
matrix or sweep key narrows that axis to the value given (`--set ctr.model=dnn`: Table 3's DNN rows
only), and the summary directory's name says so. An arm with
`pretrained: NAME` takes its architecture (ctr.*, plm.name, prompt.num_prompts, prompt.strategy) from
that pretraining run, as clickprompt.pipeline.finetune does; prompt.use_prompts stays the arm's own
(w/o Prompt).

Run directories are content-addressed: <out>/<dataset>/<stage>/<label>-<hash>/seed-<s>, where the
hash covers exactly the settings that matter to that stage (no PLM or prompt settings for a CTR model
from scratch, no plm_lr for a CTR-only run, the pretraining run's hash for a finetuning, never the
seed, device, logging or checkpoint cadence). So identical runs are shared: within an experiment
(the N/A baseline of every PLM in Table 3), across sweep points (the baseline does not depend on the
PLM learning rate), and across experiments given the same --out (Tables 2, 3 and 5 share the DCNv2 +
RoBERTa-base pretraining). A run whose results.json exists is read back, not recomputed (unless
--force); an unfinished one restarts, or continues from its saved state with --resume.

Summary (<out>/<dataset>/<experiment>[-<key=value> per narrowed axis]/summary.{md,json}): per row group and arm, test AUC and log
loss as mean ± std over seeds (sample std), validation AUC, and against the arm's `reference` (and in
`contrasts`): Rel.Impr = (mean AUC - reference mean AUC) / reference mean AUC (as the paper's tables),
the two-sided paired t-test p over seeds (test AUCs paired by seed; needs >= 2 seeds), and DeLong's
test on the test set. DeLong: `per-seed` (default) tests each seed's pair of prediction vectors (same
test rows, correlated AUCs) and reports the LARGEST p over seeds, or 1 where the seeds' AUC differences
do not all share one sign (evaluation.same_direction_p): significance in the same direction on every
seed (all per-seed p-values are in summary.json); `pooled` tests once on the seed-averaged predicted
probabilities of each arm (an ensemble per arm). Both are computed and stored; the table shows the
one chosen. With a `sweep`, every point gets its section, and a selection table picks, per arm and row
group, the point with the best mean VALIDATION AUC (the paper selects K, PLM lr and warmup from grids).
Pretraining runs are listed with their validation LM loss and value-token accuracies.

Under torchrun every rank runs the same plan (the stage functions share the work); rank 0 writes the
summary after a barrier.
"""

from __future__ import annotations

import copy
import functools
import dataclasses
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from clickprompt.config import ARCHITECTURE, STAGES, ConfigError, RunConfig, load_stage_config, read_yaml_file, set_key
from clickprompt.errors import ClickPromptError
from clickprompt.formatting import fmt_mean_std, fmt_num, fmt_p, fmt_pct, fmt_signed_ps
from clickprompt.rundir import RunDir, Stage, identity

TOP_KEYS = {"experiment", "paper", "notes", "profile", "seeds", "settings", "dataset_settings", "matrix", "pretrain",
            "arms", "contrasts", "sweep", "delong", "share_pretraining"}
ARM_KEYS = {"stage", "pretrained", "set", "reference", "label"}
PRETRAIN_KEYS = {"set", "label", "stage"}
ARM_STAGES = (Stage.TRAIN_CTR, Stage.FINETUNE_WITH_PLM, Stage.FINETUNE_WITHOUT_PLM)
# The PLM-based baselines (clickprompt.baselines) take part too: their scoring stages are arm stages (ctr-bert,
# p5, ptab-finetune, ctrl-finetune), their pretraining stages a pretrain block's `stage` (ptab-pretrain,
# ctrl-pretrain; default "pretrain", PA-MLM). An arm whose method cannot run here (P5 without a T5 at hand)
# is not run; the summary says why in its row.


def _baseline_stages() -> dict[str, object]:
    """{stage: its Method} for the baselines' stages (imported on first use: the package loads torch)."""
    from clickprompt.baselines import baseline_stages, method_of_stage

    return {str(s): method_of_stage(s) for s in baseline_stages()}


def _is_baseline(stage) -> bool:
    """Whether `stage` is a baseline's (the package is imported only when a stage is not ClickPrompt's)."""
    return stage not in STAGES and stage in _baseline_stages()


# Settings added after run directories already existed: left out of the hash while at these values, so
# the finished runs keep their addresses; any other value is part of the run's identity.
IDENTITY_IF_NOT = {"train": {"group_by_length": False, "transfer": "all", "pretrain_patience": None, "compile": False,
                             "device_batches": False},
                   "data": {"pad_to_multiple": 1}}


class ExperimentError(ClickPromptError):
    pass


# ---------------------------------------------------------------- the experiment file


@dataclass
class Arm:
    name: str
    stage: str
    pretrained: str | None = None
    set: dict = field(default_factory=dict)
    reference: str | None = None
    label: str | None = None


@dataclass
class Experiment:
    name: str
    paper: str = ""
    notes: str = ""
    profile: str | None = None
    seeds: list[int] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    dataset_settings: dict = field(default_factory=dict)
    matrix: dict = field(default_factory=dict)
    pretrain: dict = field(default_factory=dict)  # name -> {"set": {...}, "label": ...}
    arms: list[Arm] = field(default_factory=list)
    contrasts: list[tuple[str, str]] = field(default_factory=list)
    sweep: dict = field(default_factory=dict)
    delong: str = "per-seed"
    share_pretraining: bool = False
    path: str = ""


def _split_key(key: str) -> tuple[str | None, str]:
    """"pretrain/train.warmup_ratio" -> ("pretrain", "train.warmup_ratio"); "ctr.model" -> (None, "ctr.model")."""
    stage, sep, dotted = str(key).rpartition("/")
    if not sep:
        return None, dotted
    if stage not in STAGES and not _is_baseline(stage):
        known = (*STAGES, *_baseline_stages())
        raise ExperimentError(f"setting {key!r}: unknown stage {stage!r} (known: {', '.join(known)})")
    return stage, dotted


def _check_settings(where: str, d) -> dict:
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ExperimentError(f"{where}: expected a mapping of section.key: value, got {d!r}")
    probe = RunConfig()
    for key, value in d.items():
        _, dotted = _split_key(key)
        try:
            set_key(probe, dotted, value)
        except ConfigError as e:
            raise ExperimentError(f"{where}: {e}") from None
    return dict(d)


def _mapping(where: str, d, allowed: set) -> dict:
    d = d or {}
    if not isinstance(d, dict):
        raise ExperimentError(f"{where}: expected a mapping, got {d!r}")
    unknown = set(d) - allowed
    if unknown:
        raise ExperimentError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(allowed)})")
    return d


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file (see the module docstring)."""
    path = Path(path)
    raw = read_yaml_file(path, "experiment file", ExperimentError)
    raw = _mapping(str(path), raw, TOP_KEYS)
    exp = Experiment(name=str(raw.get("experiment") or path.stem), paper=str(raw.get("paper") or ""),
                     notes=str(raw.get("notes") or ""), profile=raw.get("profile"), path=str(path))
    exp.seeds = [int(s) for s in raw.get("seeds") or []]
    exp.settings = _check_settings(f"{path}: settings", raw.get("settings"))
    for ds, d in (raw.get("dataset_settings") or {}).items():
        exp.dataset_settings[str(ds)] = _check_settings(f"{path}: dataset_settings.{ds}", d)
    for where, block in (("matrix", "matrix"), ("sweep", "sweep")):
        grid = raw.get(block) or {}
        if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
            raise ExperimentError(f"{path}: {where}: expected section.key: [value, ...] lists")
        for key, values in grid.items():
            for v in values:
                _check_settings(f"{path}: {where}", {key: v})
        setattr(exp, block, dict(grid))
    for name, spec in (raw.get("pretrain") or {}).items():
        spec = _mapping(f"{path}: pretrain.{name}", spec, PRETRAIN_KEYS)
        pre_stage = str(spec.get("stage") or Stage.PRETRAIN)
        if pre_stage != Stage.PRETRAIN:  # a baseline's pretraining (ptab-pretrain, ctrl-pretrain)
            pre_stages = sorted(str(m.pretraining_stage) for m in _baseline_stages().values() if m.pretraining_stage)
            if pre_stage not in pre_stages:
                raise ExperimentError(f"{path}: pretrain.{name}.stage: expected one of {['pretrain', *pre_stages]}, "
                                      f"got {pre_stage!r}")
        exp.pretrain[str(name)] = {"set": _check_settings(f"{path}: pretrain.{name}.set", spec.get("set")),
                                   "label": spec.get("label"), "stage": pre_stage}
    arms = raw.get("arms") or {}
    if not isinstance(arms, dict) or not arms:
        raise ExperimentError(f"{path}: arms: expected a non-empty mapping name: {{stage: ..., ...}}")
    for name, spec in arms.items():
        spec = _mapping(f"{path}: arms.{name}", spec, ARM_KEYS)
        stage = spec.get("stage")
        scoring = {} if stage in ARM_STAGES else {str(m.scoring_stage): m for m in _baseline_stages().values()}
        if stage not in ARM_STAGES and stage not in scoring:
            raise ExperimentError(f"{path}: arms.{name}.stage: expected one of {(*map(str, ARM_STAGES), *scoring)}, "
                                  f"got {stage!r}")
        pre = spec.get("pretrained")
        if pre is not None and pre not in exp.pretrain:
            raise ExperimentError(f"{path}: arms.{name}.pretrained: {pre!r} is not in pretrain ({sorted(exp.pretrain)})")
        needs = scoring[stage].pretraining_stage if stage in scoring else Stage.PRETRAIN  # what it starts from
        if stage in scoring and (pre is None) != (needs is None):
            raise ExperimentError(f"{path}: arms.{name}: a {stage} arm " + (f"starts from a {needs} pretrain block"
                                  if needs else "starts from the published PLM (no pretrained)"))
        if pre is not None and needs is not None and exp.pretrain[pre]["stage"] != needs:
            raise ExperimentError(f"{path}: arms.{name}.pretrained: {pre!r} is a {exp.pretrain[pre]['stage']} block; "
                                  f"a {stage} arm starts from a {needs} one")
        if pre is not None and stage == "train-ctr":
            raise ExperimentError(f"{path}: arms.{name}: a train-ctr arm starts from scratch (no pretrained)")
        exp.arms.append(Arm(str(name), stage, pre, _check_settings(f"{path}: arms.{name}.set", spec.get("set")),
                            spec.get("reference"), spec.get("label")))
    names = [a.name for a in exp.arms]
    for arm in exp.arms:
        if arm.reference is not None and arm.reference not in names:
            raise ExperimentError(f"{path}: arms.{arm.name}.reference: {arm.reference!r} is not an arm")
    for c in raw.get("contrasts") or []:
        c = _mapping(f"{path}: contrasts", c, {"arm", "against"})
        against = c.get("against") or []
        against = [against] if isinstance(against, str) else against
        for other in [c.get("arm"), *against]:
            if other not in names:
                raise ExperimentError(f"{path}: contrasts: {other!r} is not an arm")
        exp.contrasts += [(c["arm"], o) for o in against]
    exp.delong = str(raw.get("delong") or "per-seed")
    if exp.delong not in ("per-seed", "pooled"):
        raise ExperimentError(f"{path}: delong: expected per-seed or pooled, got {exp.delong!r}")
    exp.share_pretraining = bool(raw.get("share_pretraining", False))
    return exp


# ---------------------------------------------------------------- planning


@dataclass
class Run:
    """One run directory: a stage with its resolved settings and one seed."""

    stage: str
    cfg: RunConfig
    seed: int
    run_dir: Path
    key: str  # content hash of the settings that matter to the stage (seed excluded)
    pretrained: "Run | None" = None

    @property
    def done(self) -> bool:
        return RunDir(self.run_dir).finished

    # Read once per summary, after the run finished (a shared reference is compared with many arms).
    @functools.cached_property
    def results(self) -> dict:
        return RunDir(self.run_dir).read_results()

    @functools.cached_property
    def test_predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """(labels, probs) of the finished run's test split."""
        return RunDir(self.run_dir).read_predictions()


@dataclass
class Plan:
    experiment: Experiment
    dataset: str
    profile: str | None
    seeds: list[int]
    out: Path
    points: list[dict]  # sweep points (one empty dict without a sweep)
    instances: list[dict]  # matrix combinations (one empty dict without a matrix)
    cells: dict = field(default_factory=dict)  # (point index, instance index, arm or pretrain name, seed) -> Run
    runs: list[Run] = field(default_factory=list)  # unique runs in execution order
    selected: dict = field(default_factory=dict)  # matrix / sweep keys narrowed to one value by --set
    skipped: dict = field(default_factory=dict)  # arm name -> why it is not run (a baseline that cannot run here)

    @property
    def summary_dir(self) -> Path:  # one per selection, so `--set ctr.model=dnn` and `=autoint` keep both
        suffix = "".join(f"-{_slug(f'{k}={v}')}" for k, v in self.selected.items())
        return self.out / self.dataset / (self.experiment.name + suffix)


def _grid(d: dict) -> list[dict]:
    if not d:
        return [{}]
    keys = list(d)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(d[k] for k in keys))]


def _apply(cfg: RunConfig, settings: dict, stage: str) -> None:
    for key, value in settings.items():
        only, dotted = _split_key(key)
        if only is None or only == stage:
            set_key(cfg, dotted, value)


def _parse_overrides(overrides) -> dict:
    out = {}
    for item in overrides or []:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise ExperimentError(f"override {item!r}: expected section.key=value")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else value
    return out


def _identity(stage: str, cfg: RunConfig, pretrained_key: str | None) -> dict:
    """What a run directory's address hashes: the run's identity (clickprompt.rundir.identity) without the
    seed (the address ends in seed-<s>), and the pretraining run's key instead of its path."""
    d = identity(stage, {**cfg.to_dict(), "pretrained": pretrained_key})
    d["train"].pop("seed")
    for section, defaults in IDENTITY_IF_NOT.items():
        for k, value in defaults.items():
            if d[section].get(k, value) == value:
                d[section].pop(k, None)
    return {"stage": stage, "settings": d, "pretrained": pretrained_key}


def _inherit(cfg: RunConfig, pretrained: RunConfig, layers: list[dict], stage: str) -> None:
    """config.inherit_architecture for an arm: every key the experiment's layers set for this stage counts
    as explicit, so one that gives the finetuning another architecture than its pretraining is refused."""
    from clickprompt.config import inherit_architecture

    cfg.explicit = frozenset(dotted for layer in layers for only, dotted in map(_split_key, layer)
                             if only in (None, stage))
    try:
        inherit_architecture(cfg, pretrained, "this arm starts from")
    except ConfigError as e:
        raise ExperimentError(str(e)) from None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_")[:60] or "x"


def _plm_label(name: str) -> str:
    return _slug(Path(name).name or name)


def _run_label(stage: str, cfg: RunConfig, pretrained: Run | None) -> str:
    if _is_baseline(stage):  # ctr-bert-minilm-l6, ctrl-pretrain-autoint-minilm-l6, ...
        uses_ctr = stage in (Stage.CTRL_PRETRAIN, Stage.CTRL_FINETUNE)
        return f"{stage}-" + (f"{cfg.ctr.model}-" if uses_ctr else "") + _plm_label(cfg.plm.name)
    if stage == "train-ctr":
        return cfg.ctr.model
    if stage == "finetune-without-plm":
        return f"{cfg.ctr.model}-{'pretrained' if pretrained else 'scratch'}"
    base = f"{cfg.ctr.model}-{_plm_label(cfg.plm.name)}-K{cfg.prompt.num_prompts}-{cfg.prompt.strategy}"
    if stage == "pretrain":
        return base
    return base + ("" if cfg.prompt.use_prompts else "-noprompt") + ("" if pretrained else "-nopretrain")


def _hash(identity: dict) -> str:
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]


def plan_experiment(exp: Experiment, dataset: str, *, seeds=None, out: str | Path = "runs/exp",
                    profile: str | None = None, overrides=None, config_file: str | Path | None = None,
                    processed_dir: str | Path | None = None) -> Plan:
    """Expand an experiment into its runs (nothing is run)."""
    profile = profile or exp.profile
    seeds = [int(s) for s in (seeds or exp.seeds)]
    if not seeds:
        seeds = [load_stage_config(profile, "train-ctr").train.seed]
    cli = _parse_overrides(overrides)
    selected = {k: cli[k] for k in (*exp.matrix, *exp.sweep) if k in cli}  # --set of an axis picks its value

    def narrowed(axes: dict) -> dict:
        return {k: [selected[k]] if k in selected else values for k, values in axes.items()}

    plan = Plan(exp, dataset, profile, seeds, Path(out), _grid(narrowed(exp.sweep)), _grid(narrowed(exp.matrix)),
                selected=selected)
    unique: dict[Path, Run] = {}

    bases = {stage: load_stage_config(profile, stage, config_file) for stage in STAGES}
    if any(_is_baseline(a.stage) for a in exp.arms):
        from clickprompt.baselines import stage_config

        bases.update({stage: stage_config(profile, stage, config_file) for stage in _baseline_stages()})

    def make(stage: str, layers: list[dict], seed: int, pretrained: Run | None) -> Run:
        cfg = copy.deepcopy(bases[stage])
        for layer in layers:
            _apply(cfg, layer, stage)
        _apply(cfg, cli, stage)
        cfg.data.dataset = dataset
        if processed_dir is not None:
            cfg.data.processed_dir = str(processed_dir)
        cfg.train.seed = seed
        if pretrained is not None:  # the architecture is the pretraining run's (as in pipeline.finetune)
            _inherit(cfg, pretrained.cfg, layers, stage)
        key = _hash(_identity(stage, cfg, pretrained.key if pretrained else None))
        run_dir = plan.out / dataset / stage / f"{_slug(_run_label(stage, cfg, pretrained))}-{key}" / f"seed-{seed}"
        if run_dir not in unique:
            unique[run_dir] = Run(stage, cfg, seed, run_dir, key, pretrained)
        return unique[run_dir]

    for pi, point in enumerate(plan.points):
        for ii, inst in enumerate(plan.instances):
            base = [exp.settings, exp.dataset_settings.get(dataset, {}), inst, point]
            for name, spec in exp.pretrain.items():
                for s in seeds:  # with share_pretraining, every seed's cell is the first seed's one run
                    s_pre = seeds[0] if exp.share_pretraining else s
                    plan.cells[(pi, ii, f"pretrain:{name}", s)] = make(spec["stage"], base + [spec["set"]], s_pre, None)
            for arm in exp.arms:
                for s in seeds:
                    pre = None
                    if arm.pretrained is not None:
                        pre = plan.cells[(pi, ii, f"pretrain:{arm.pretrained}", seeds[0] if exp.share_pretraining else s)]
                    plan.cells[(pi, ii, arm.name, s)] = make(arm.stage, base + [arm.set], s, pre)
    order = {"pretrain": 0, "train-ctr": 1, "finetune-without-plm": 2, "finetune-with-plm": 3}
    for arm in exp.arms:  # a baseline that cannot run here (P5 without a T5): listed, not run
        if _is_baseline(arm.stage):
            order.update({str(m.pretraining_stage): 0 for m in _baseline_stages().values() if m.pretraining_stage})
            from clickprompt.baselines import unavailable

            why = unavailable(arm.stage, plan.cells[(0, 0, arm.name, seeds[0])].cfg)
            if why:
                plan.skipped[arm.name] = why
    used = {id(r) for key, r in plan.cells.items() if key[2] not in plan.skipped}
    plan.runs = sorted((r for r in unique.values() if id(r) in used), key=lambda r: (order.get(r.stage, 2), str(r.run_dir)))
    return plan


# ---------------------------------------------------------------- running


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def execute_run(run: Run, *, force: bool = False, resume: bool = False, progress: bool = True) -> dict:
    """Run (or read back: the stages reuse a finished run with the same settings) one run of a plan."""
    from clickprompt import pipeline

    cfg = copy.deepcopy(run.cfg)
    kw = dict(force=force, resume=resume and RunDir(run.run_dir).has_state and not force, progress=progress)
    if run.stage == Stage.TRAIN_CTR:
        return pipeline.train_ctr(cfg, run.run_dir, **kw)
    if run.stage == Stage.PRETRAIN:
        return pipeline.pretrain(cfg, run.run_dir, **kw)
    pretrained = run.pretrained.run_dir if run.pretrained else None
    if _is_baseline(run.stage):
        from clickprompt.baselines import run_stage

        return run_stage(run.stage, cfg, run.run_dir, pretrained=pretrained, **kw)
    return pipeline.finetune(cfg, run.run_dir, pretrained=pretrained, with_plm=run.stage == Stage.FINETUNE_WITH_PLM, **kw)


def run_experiment(config: str | Path | Experiment, dataset: str, *, seeds=None, out: str | Path = "runs/exp",
                   profile: str | None = None, overrides=None, config_file=None, processed_dir=None,
                   force: bool = False, resume: bool = False, progress: bool = True, dry_run: bool = False,
                   summary_only: bool = False, log=print) -> dict:
    """Plan, run what is missing, summarise. Returns the summary dict (or the plan listing for dry runs)."""
    from clickprompt.training import is_main_process

    exp = config if isinstance(config, Experiment) else load_experiment(config)
    plan = plan_experiment(exp, dataset, seeds=seeds, out=out, profile=profile, overrides=overrides,
                           config_file=config_file, processed_dir=processed_dir)
    say = log if is_main_process() else (lambda *a, **k: None)
    n_done = sum(r.done for r in plan.runs)
    say(f"[experiment {exp.name}] {dataset}, profile {plan.profile!r}, seeds {plan.seeds}: {len(plan.runs)} runs "
        f"({n_done} finished), {len(plan.points)} sweep point(s) x {len(plan.instances)} row group(s) x "
        f"{len(exp.arms)} arm(s)")
    if dry_run:
        listing = [{"stage": r.stage, "run_dir": str(r.run_dir), "done": r.done,
                    "pretrained": str(r.pretrained.run_dir) if r.pretrained else None} for r in plan.runs]
        for r in listing:
            say(f"  {'done' if r['done'] else 'todo'}  {r['stage']:22s} {r['run_dir']}")
        for arm, why in plan.skipped.items():
            say(f"  skip  {arm}: {why}")
        return {"plan": listing, "skipped": plan.skipped}
    if not summary_only:
        for i, run in enumerate(plan.runs, 1):
            status = "reuse" if run.done and not force else "run"
            say(f"[{i}/{len(plan.runs)}] {status} {run.stage} {run.run_dir}")
            execute_run(run, force=force, resume=resume, progress=progress)
            _barrier()
    missing = [str(r.run_dir) for r in plan.runs if not r.done]
    if missing:
        raise ExperimentError(f"{len(missing)} run(s) have no results yet (e.g. {missing[0]}); run without --summary-only")
    summary = summarize(plan)
    if is_main_process():
        from clickprompt.checkpoint import atomic_write_text

        plan.summary_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(plan.summary_dir / "summary.json", json.dumps(summary, indent=2, default=_json_default))
        atomic_write_text(plan.summary_dir / "summary.md", summary["markdown"] + "\n")
        say(summary["markdown"])
        say(f"\nsummary: {plan.summary_dir / 'summary.md'}")
    _barrier()
    return summary


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    raise TypeError(type(o))


# ---------------------------------------------------------------- summary


def _nan_to_none(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def compare(runs: list[Run], ref_runs: list[Run]) -> dict:
    """Arm vs reference over paired seeds: Rel.Impr of mean test AUC, paired t-test p, DeLong p."""
    from clickprompt.evaluation import delong_per_seed, delong_test, paired_ttest, rel_impr

    a = [r.results["test"]["auc"] for r in runs]
    b = [r.results["test"]["auc"] for r in ref_runs]
    out = {"rel_impr": rel_impr(float(np.mean(a)), float(np.mean(b))), "ttest_p": _nan_to_none(paired_ttest(a, b))}
    pairs = []  # (labels, arm probs, reference probs) per seed
    for r, q in zip(runs, ref_runs):
        (la, xa), (lb, xb) = r.test_predictions, q.test_predictions
        if not np.array_equal(la, lb):
            raise ExperimentError(f"{r.run_dir} and {q.run_dir} were scored on different test sets")
        pairs.append((la, xa, xb))
    seedwise = delong_per_seed(pairs)  # a run against itself: p = 1, difference 0
    out["delong_p_per_seed"], out["auc_diff_per_seed"] = seedwise["p"], seedwise["auc_diff"]
    out["delong_p_every_seed"] = seedwise["p_every_seed"]
    out["delong_p_pooled"] = (delong_test(pairs[0][0], np.mean([x for _, x, _ in pairs], axis=0),
                                          np.mean([x for _, _, x in pairs], axis=0))[2] if pairs else None)
    return out


def _seed_ps(c: dict | None) -> str:
    """Per-seed DeLong p-values, each signed by the direction of that seed's AUC difference."""
    return fmt_signed_ps(c["auc_diff_per_seed"], c["delong_p_per_seed"]) if c else "-"


def _instance_label(inst: dict) -> str:
    return ", ".join(f"{k}={_plm_label(v) if k == 'plm.name' else v}" for k, v in inst.items()) or "all"


def summarize(plan: Plan) -> dict:
    """The summary dict (rows per sweep point, row group and arm) and its Markdown rendering."""
    from clickprompt.evaluation import mean_std

    exp = plan.experiment
    seeds = plan.seeds
    delong_key = "delong_p_every_seed" if exp.delong == "per-seed" else "delong_p_pooled"
    per_seed_col = len(seeds) > 1  # one more column: each seed's DeLong p, signed by its AUC difference
    sections, md = [], []
    md.append(f"# {exp.name}: {plan.dataset}")
    if exp.paper:
        md.append(f"\n{exp.paper.strip()}")
    md.append(f"\nProfile {plan.profile!r}; seeds {seeds}; test-set metrics, mean ± std over seeds. Rel.Impr: relative "
              "AUC improvement of the arm's mean over its reference's; t-test: paired over seeds (two-sided); DeLong: "
              + ("the largest of the per-seed p-values, or 1 where the seeds differ in direction (a significant "
                 "difference in the same direction on every seed)." if exp.delong == "per-seed" else
                 "one test on the seed-averaged predictions of each arm (pooled)."))
    if exp.notes:
        md.append(f"\n{exp.notes.strip()}")
    for pi, point in enumerate(plan.points):
        sec = {"point": point, "groups": []}
        if point:
            md.append(f"\n## Sweep point {pi + 1}: " + ", ".join(f"{k}={v}" for k, v in point.items()))
        for ii, inst in enumerate(plan.instances):
            group = {"instance": inst, "rows": [], "pretraining": [], "contrasts": []}
            level = "###" if point else "##"  # a row group sits under its sweep point's heading, if any
            md.append(f"\n{level} {_instance_label(inst)}\n" if inst or point else "")
            for name in exp.pretrain:
                runs = [plan.cells[(pi, ii, f"pretrain:{name}", s)] for s in seeds]
                res = [r.results for r in runs]
                loss_key = next((k for k in ("valid_mlm_loss", "valid_clm_loss", "valid_infonce_loss") if k in res[0]), None)
                row = {"pretrain": name, "runs": sorted({str(r.run_dir) for r in runs}),
                       "objective": res[0].get("objective", "PA-MLM"),
                       "valid_loss": mean_std([r.get(loss_key) for r in res]) if loss_key else None}
                for mode in ("true", "shuffled", "none"):
                    row[f"value_token_acc_{mode}"] = mean_std([r.get(f"value_token_acc_{mode}") for r in res])
                group["pretraining"].append(row)
            md.append("| arm | stage | test AUC | test log loss | valid AUC | reference | Rel.Impr | t-test p | DeLong p |"
                      + (" DeLong p per seed (sign of ΔAUC) |" if per_seed_col else ""))
            md.append("|---|---|---|---|---|---|---|---|---|" + ("---|" if per_seed_col else ""))
            for arm in exp.arms:
                if arm.name in plan.skipped:  # a baseline that cannot run here: its row says why
                    group["rows"].append({"arm": arm.name, "label": arm.label or arm.name, "stage": arm.stage,
                                          "not_run": plan.skipped[arm.name]})
                    md.append(f"| {arm.label or arm.name} | {arm.stage} | {plan.skipped[arm.name]} | - | - | - | - | - | - |"
                              + (" - |" if per_seed_col else ""))
                    continue
                runs = [plan.cells[(pi, ii, arm.name, s)] for s in seeds]
                res = [r.results for r in runs]
                row = {
                    "arm": arm.name, "label": arm.label or arm.name, "stage": arm.stage,
                    "runs": [str(r.run_dir) for r in runs], "seeds": seeds,
                    "test_auc": [r["test"]["auc"] for r in res], "test_logloss": [r["test"]["logloss"] for r in res],
                    "valid_auc": [r["valid"]["auc"] for r in res],
                }
                row["test_auc_mean_std"] = mean_std(row["test_auc"])
                row["test_logloss_mean_std"] = mean_std(row["test_logloss"])
                row["valid_auc_mean"] = mean_std(row["valid_auc"])[0]
                if arm.reference is not None and arm.reference not in plan.skipped:
                    refs = [plan.cells[(pi, ii, arm.reference, s)] for s in seeds]
                    row["reference"] = arm.reference
                    row.update(compare(runs, refs))
                group["rows"].append(row)
                ref = row.get("reference")
                md.append(
                    f"| {row['label']} | {arm.stage} | {fmt_mean_std(*row['test_auc_mean_std'], n=len(seeds))} | "
                    f"{fmt_mean_std(*row['test_logloss_mean_std'], n=len(seeds))} | {fmt_num(row['valid_auc_mean'])} | {ref or '-'} | "
                    + ("-" if ref is None else fmt_pct(row['rel_impr'])) + " | "
                    + f"{fmt_p(row.get('ttest_p'))} | {fmt_p(row.get(delong_key))} |"
                    + (f" {_seed_ps(row if ref else None)} |" if per_seed_col else "")
                )
            if exp.contrasts:
                md.append("\n| contrast | Rel.Impr | t-test p | DeLong p |" + (" DeLong p per seed (sign of ΔAUC) |" if per_seed_col else ""))
                md.append("|---|---|---|---|" + ("---|" if per_seed_col else ""))
                for a, b in exp.contrasts:
                    if a in plan.skipped or b in plan.skipped:
                        md.append(f"| {a} vs {b} | not run | - | - |" + (" - |" if per_seed_col else ""))
                        continue
                    c = compare([plan.cells[(pi, ii, a, s)] for s in seeds], [plan.cells[(pi, ii, b, s)] for s in seeds])
                    group["contrasts"].append({"arm": a, "against": b, **c})
                    md.append(f"| {a} vs {b} | {fmt_pct(c['rel_impr'])} | {fmt_p(c['ttest_p'])} | {fmt_p(c[delong_key])} |"
                              + (f" {_seed_ps(c)} |" if per_seed_col else ""))
            if group["pretraining"]:
                md.append("\n| pretraining | objective | valid LM loss | value-token acc. (true / shuffled / none prompts) |")
                md.append("|---|---|---|---|")
                for p in group["pretraining"]:
                    accs = " / ".join(fmt_num(p[f"value_token_acc_{m}"][0], 3) for m in ("true", "shuffled", "none"))
                    md.append(f"| {p['pretrain']} | {p['objective']} | "
                              f"{fmt_mean_std(*p['valid_loss'], n=len(seeds)) if p['valid_loss'] else '-'} | {accs} |")
            sec["groups"].append(group)
        sections.append(sec)
    summary = {"experiment": exp.name, "config": exp.path, "paper": exp.paper, "dataset": plan.dataset,
               "profile": plan.profile, "seeds": seeds, "delong": exp.delong, "sections": sections}
    if len(plan.points) > 1:
        summary["selection"] = _select(plan, sections)
        md.append("\n## Selection on validation AUC\n")
        md.append("| row group | arm | best point | valid AUC | test AUC |")
        md.append("|---|---|---|---|---|")
        for s in summary["selection"]:
            md.append(f"| {_instance_label(s['instance'])} | {s['arm']} | "
                      + ", ".join(f"{k}={v}" for k, v in s["point"].items())
                      + f" | {fmt_num(s['valid_auc_mean'])} | {fmt_mean_std(*s['test_auc_mean_std'], n=len(seeds))} |")
    summary["markdown"] = "\n".join(md)
    return summary


def _select(plan: Plan, sections: list[dict]) -> list[dict]:
    out = []
    for ii, inst in enumerate(plan.instances):
        for arm in plan.experiment.arms:
            cands = []
            for sec in sections:
                row = next(r for r in sec["groups"][ii]["rows"] if r["arm"] == arm.name)
                if "not_run" not in row:
                    cands.append((row["valid_auc_mean"], sec["point"], row))
            if not cands:
                continue
            best = max(cands, key=lambda c: -math.inf if c[0] is None or math.isnan(c[0]) else c[0])
            out.append({"instance": inst, "arm": arm.name, "point": best[1], "valid_auc_mean": best[0],
                        "test_auc_mean_std": best[2]["test_auc_mean_std"], "runs": best[2]["runs"]})
    return out
