"""The registry of PLM-based baselines, beside the CTR registry (clickprompt.ctr): one name per method.

    from clickprompt.baselines import get_method, list_methods
    list_methods()                         # ['ctr-bert', 'ctrl', 'p5', 'ptab']
    m = get_method("ptab")                 # Method: label "PTab", stages (ptab-pretrain, ptab-finetune)
    m.run(Stage.PTAB_PRETRAIN, cfg, "runs/ptab/pretrain")
    m.run(Stage.PTAB_FINETUNE, cfg, "runs/ptab/finetune", pretrained="runs/ptab/pretrain")

A method is one or two stages, each a function `(cfg, run_dir, *, pretrained, resume, force, progress) ->
results` that validates its settings, then writes one run directory through clickprompt.rundir.RunDir and
trains with clickprompt.training.train, like the ClickPrompt stages of clickprompt.pipeline. The last
stage scores clicks; a first stage (PTab's MLM, CTRL's contrastive pretraining) is what it starts from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from clickprompt.rundir import Stage

StageFn = Callable[..., dict]


@dataclass(frozen=True)
class Method:
    name: str  # registry name, lowercase: "ctr-bert", "ptab", "p5", "ctrl"
    label: str  # the paper's spelling, Table 2's row: "CTR-BERT", "PTab", "P5", "CTRL"
    summary: str  # one line: what the method is
    stages: dict[Stage, StageFn] = field(default_factory=dict)  # in order; the last scores clicks
    # (cfg) -> None, or one line saying why the method cannot run here (P5 without a T5 at hand)
    unavailable: Callable[[object], str | None] = lambda cfg: None

    @property
    def pretraining_stage(self) -> Stage | None:
        return next(iter(self.stages)) if len(self.stages) > 1 else None

    @property
    def scoring_stage(self) -> Stage:
        return list(self.stages)[-1]

    def run(self, stage: Stage | str, cfg, run_dir, **kwargs) -> dict:
        return self.stages[Stage(stage)](cfg, run_dir, **kwargs)


_METHODS: dict[str, Method] = {}
_BY_STAGE: dict[Stage, Method] = {}


def register_method(method: Method) -> Method:
    """Add a method; a name or stage registered twice is refused."""
    if method.name in _METHODS:
        raise ValueError(f"baseline {method.name!r} is already registered")
    taken = [s for s in method.stages if s in _BY_STAGE]
    if taken:
        raise ValueError(f"baseline {method.name!r}: stage {taken[0]} already belongs to {_BY_STAGE[taken[0]].name!r}")
    _METHODS[method.name] = method
    _BY_STAGE.update({s: method for s in method.stages})
    return method


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> Method:
    """The method registered as `name` (or by its paper label, any case); KeyError listing the known names."""
    squash = str(name).lower().replace("_", "-")
    for method in _METHODS.values():
        if squash in (method.name, method.label.lower()):
            return method
    raise KeyError(f"unknown baseline {name!r}; known baselines: {', '.join(list_methods())}")


def method_of_stage(stage: Stage | str) -> Method:
    try:
        return _BY_STAGE[Stage(stage)]
    except (KeyError, ValueError):
        raise KeyError(f"stage {stage!r} belongs to no baseline (known: {', '.join(map(str, _BY_STAGE))})") from None


def baseline_stages() -> tuple[Stage, ...]:
    return tuple(_BY_STAGE)


def is_baseline_stage(stage) -> bool:
    try:
        return Stage(stage) in _BY_STAGE
    except ValueError:
        return False


def run_stage(stage: Stage | str, cfg, run_dir, **kwargs) -> dict:
    """Run one stage of a baseline (clickprompt.experiments and the CLI call this)."""
    return method_of_stage(stage).run(stage, cfg, run_dir, **kwargs)
